-- Migration 6: the client certificate's subject.
--
-- tls_subject is the subject of the certificate a client presented on a
-- tls=on listener and that verified against tls-ca (tls-verify-client =
-- optional or require), in RFC 2253 form (X509_NAME_print_ex with
-- XN_FLAG_RFC2253: "CN=web-01,O=Example", most specific RDN first,
-- non-ASCII bytes escaped as \XX).  NULL for plain TCP, for TLS without a
-- client certificate, and for rows stored before this migration.  Adding
-- a nullable column without a default changes only the catalog: no table
-- or partition is rewritten.
--
-- The dead-letter table gets it too, beside peer, for rows of such a
-- client that PostgreSQL refuses.

ALTER TABLE @TABLE@ ADD COLUMN IF NOT EXISTS tls_subject text;

COMMENT ON COLUMN @TABLE@.tls_subject IS
	'Subject (RFC 2253) of the verified TLS client certificate, or NULL';

ALTER TABLE @TABLE@_rejected ADD COLUMN IF NOT EXISTS tls_subject text;
