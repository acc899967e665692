"""Authentication of SASL listeners: tokens verified as Pulsar verifies them, the SASL
mechanisms (PLAIN, OAUTHBEARER) and the per-connection exchange, all sans-io."""
