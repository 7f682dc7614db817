"""Governing what the archive keeps: retention classes and the purge
(:mod:`.retention`), and legal holds by case (:mod:`.holds`)."""
