"""The synthetic SIDs of the device tests: two domains whose RIDs differ (no DC needed)."""

SRC = "S-1-5-21-1004336348-1177238915-682003330"
TGT = "S-1-5-21-3623811015-3361044348-30300820"
# alice 1102 -> 2201, finance 1104 -> 3104, Domain Users 513 -> 513; dave (1109) and
# eve (1103) have no match on the target: reported, never guessed.
TABLE = {f"{SRC}-1102": f"{TGT}-2201", f"{SRC}-1104": f"{TGT}-3104", f"{SRC}-513": f"{TGT}-513"}
UNMATCHED = {f"{SRC}-1109", f"{SRC}-1103"}
