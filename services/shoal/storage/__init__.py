"""The one storage module every service reads through: the catalog now, the versioned tables later.
Only the versioning service writes the catalog and the tables."""
