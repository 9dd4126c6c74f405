"""The issuer. It needs the `server` extra: pip install 'stateless-auth[server]'."""
