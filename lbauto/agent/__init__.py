"""The bundled LB agent: an HTTP control API over an nftables data plane (DESIGN section 6)."""
