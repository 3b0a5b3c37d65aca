"""Concrete providers: an endpoint (URL, auth) bound to a wire dialect."""
