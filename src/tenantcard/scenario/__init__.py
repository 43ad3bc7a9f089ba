"""The whole scenario of the seed, run against real servers: the operator, the identity provider and one device
as processes on loopback, three providers as SDK clients. Manufacture, then phase 1 (initialization), phase 2
(access) and phase 3 (revocation), each step recorded in a trace. ``tenantcard demo`` is its command line."""
