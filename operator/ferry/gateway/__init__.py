"""The gateway: the HTTPS endpoint on-premises agents reach outbound, and sync Jobs submit to.

ca (the agent CA), tls (server context, agent identity), enrollment (tokens, CSR signing),
queue (leased work, in memory), app (routes and authentication), server (`ferry gateway`).
"""
