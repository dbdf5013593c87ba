"""HTTP: the JSON API, the sync endpoints and the screens, built by one app factory."""
