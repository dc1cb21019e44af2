"""A Microsoft Graph v1.0 + Entra ID sign-in emulator for tests (not product code).

One HTTPS process on a loopback address (127.0.0.120-139) serves both halves:

    https://127.0.0.121:PORT/{tenant}/v2.0/.well-known/openid-configuration   discovery (MSAL)
    https://127.0.0.121:PORT/{tenant}/oauth2/v2.0/token      client credentials grant
    https://127.0.0.121:PORT/v1.0/...                        Graph
    https://127.0.0.121:PORT/_emulator/...                   admin API (fixture.EmulatorAdmin)

Several tenants live in one process; `{tenant}` is a tenant id or any verified domain. What it
emulates, module by module: signin.py (secret, certificate and federated-credential sign-in,
AADSTS errors), access.py (Graph's token check, 401 InvalidAuthenticationToken), permissions.py
(application permissions per call, 403 Authorization_RequestDenied), users.py, groups.py,
delta.py, invitations.py, deleted.py, readonly.py (contacts, devices, administrative units),
batch.py ($batch), odata.py ($select/$filter/$top/paging), graph.py (write quota: 429 +
Retry-After), faults.py (injected 5xx, connection resets). Start it with fixture.GraphEmulator;
seed and inspect it with its `.admin` (fixture.EmulatorAdmin).

Pointing the real clients at it (tested in tests/integration/graph; the Entra connector needs
exactly these steps with the real cloud's values in place of the emulator's):

1. azure-identity. Every credential, sync or aio, takes the same three keyword arguments
   (sdk.credential_options builds them):

       options = {"authority": emulator.authority_host,         # https://127.0.0.121:PORT
                  "connection_verify": str(emulator.ca_file),   # CA bundle for the authority
                  "disable_instance_discovery": True}
       ClientSecretCredential(tenant_id, client_id, secret, **options)
       CertificateCredential(tenant_id, client_id, certificate_path=pem_with_key, **options)
       ClientAssertionCredential(tenant_id, client_id, func_returning_jwt, **options)
       WorkloadIdentityCredential(tenant_id=..., client_id=..., token_file_path=..., **options)

   - `authority` is the scheme + host (+ port) only; the credential appends `/{tenant_id}`.
     It must be https. The environment variable AZURE_AUTHORITY_HOST does the same when
     `authority` isn't passed.
   - `connection_verify` is an azure-core transport option: a CA bundle path for both the
     requests (sync) and aiohttp (aio) transports. (REQUESTS_CA_BUNDLE would cover only sync.)
   - `disable_instance_discovery=True` matters for the sync credentials (they run MSAL): MSAL
     otherwise asks https://login.microsoftonline.com/common/discovery/instance whether an
     unknown host is an authority, and fails without that network. MSAL then reads
     `{authority}/{tenant}/v2.0/.well-known/openid-configuration` and posts to its
     `token_endpoint`. The aio credentials post to `{authority}/{tenant}/oauth2/v2.0/token`
     directly (no discovery); passing the flag to them is harmless.
   - Certificates: azure-identity (aio) signs the assertion PS256 with an `x5t#S256` header;
     MSAL (sync) RS256 with `x5t`. Both are accepted. The assertion's `aud` is the token URL.
   - Workload identity: the token file holds a JWT from the external issuer with
     `aud: api://AzureADTokenExchange`; register the issuer, subject and its public key on the
     app (EmulatorAdmin.register_app(federated_credentials=...)), as Entra's federated
     credential; matching is exact and case-sensitive.

2. msgraph-sdk. Build the HTTP client yourself so it trusts the CA, keep Graph's middleware
   (retries honouring Retry-After, redirects, ...), allow the host for the bearer token, and set
   the base URL on the adapter (sdk.graph_service_client does all of this):

       http_client = httpx.AsyncClient(
           verify=ssl.create_default_context(cafile=str(emulator.ca_file)),
           timeout=httpx.Timeout(60.0, connect=10.0))
       http_client = GraphClientFactory.create_with_default_middleware(client=http_client)
       auth = AzureIdentityAuthenticationProvider(          # msgraph_core.authentication
           credential, scopes=["https://graph.microsoft.com/.default"],
           allowed_hosts=["127.0.0.121"])
       adapter = GraphRequestAdapter(auth, client=http_client)   # msgraph.GraphRequestAdapter
       adapter.base_url = emulator.graph_url                     # https://127.0.0.121:PORT/v1.0
       client = GraphServiceClient(request_adapter=adapter)

   - allowed_hosts: the auth provider sends a token only to these hosts (default: Microsoft's
     national cloud Graph hosts) and otherwise sends the request without one (401). It takes
     host names without scheme or port.
   - scopes: pass `https://graph.microsoft.com/.default` explicitly; by default the provider
     derives `https://{request host}/.default`, which sign-in refuses for a non-Graph host.
   - base_url: set it on the adapter without a trailing slash (httpx adds one to its own
     `base_url`, which would give `//users`). nextLink/deltaLink URLs are absolute; follow them
     with `client.users.with_url(link).get()` or msgraph_core's PageIterator.
   - Retries: the default RetryHandler retries 429, 503 and 504 up to 3 times, waiting
     Retry-After (integer seconds). Pass `RetryHandlerOption` in the factory's `options` to
     change it. Connection resets are not retried: they surface as httpx.TransportError.
   - Bulk reads: parsing into msgraph models costs about 5 ms per user (50,000 users: ~4 min
     of CPU); the same adapter returns raw JSON cheaply:
     `await client.request_adapter.send_primitive_async(info, "bytes", {"XXX": ODataError})`
     with `info = client.users.to_get_request_information(config)`, then for each nextLink
     `client.users.with_url(link).to_get_request_information()` (tested).
   - $batch: `msgraph_core.requests.BatchRequestContent` needs the `Deprecated` package, which
     msgraph-core 1.5.2 imports without declaring (compat.py puts a stand-in in place for the
     tests). Give each `BatchRequestItem(info, id=...)` its id (add_request_information's id is
     ignored), and note that this kiota version drops JSON bodies of batch responses
     (microsoft/kiota-python#737): statuses and headers arrive, bodies don't. msgraph-core
     writes absolute URLs and `depends_on` (not Graph's `dependsOn`) into batch requests.

Errors come back as msgraph's ODataError: `.response_status_code`, `.error.code`,
`.error.message`, `.error.inner_error.request_id`, `.response_headers` (Retry-After, Location).
"""
