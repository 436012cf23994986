// Facts about the build: ATT&CK version, sources, build time.
// Parameters: none.
// Columns: key, value.
// :params {}
MATCH (i:KbInfo)
RETURN i.key AS key, i.value AS value
ORDER BY key
