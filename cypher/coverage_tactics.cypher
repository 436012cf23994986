// Coverage: the ATT&CK tactics, in matrix order, for filters and layers.
// Parameters: none.
// Columns: id, shortname, name, matrix_order.
// :params {}
MATCH (t:Tactic)
RETURN t.id AS id, t.shortname AS shortname, t.name AS name, t.matrix_order AS matrix_order
ORDER BY matrix_order, id
