"""Microsoft Entra ID through Microsoft Graph (msgraph-sdk, azure-identity)."""
