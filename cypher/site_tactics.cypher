// Site batch: the ATT&CK tactics in matrix order, the columns of the site's matrix.
// Parameters: none.
// Columns: id, shortname, name, matrix_order.
// :params {}
MATCH (t:Tactic)
RETURN t.id AS id, t.shortname AS shortname, t.name AS name, t.matrix_order AS matrix_order
ORDER BY matrix_order, id
