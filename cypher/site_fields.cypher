// Site batch: every field rules filter on, with the vendor names seen for it, for the field
// pages.
// Parameters: none.
// Columns: field, mapped, aliases.
// :params {}
MATCH (f:Field)
RETURN f.name AS field, f.mapped AS mapped, f.aliases AS aliases
ORDER BY field
