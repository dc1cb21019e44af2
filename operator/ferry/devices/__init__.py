"""Device migration decided from records: which devices, what each does next, how far they are.

Pure (records in, plans and status out); reconcile.py is the one part that reads and writes
the state store, shared by the operator and `ferry devices run`."""
