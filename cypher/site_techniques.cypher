// Site batch: every technique with its ATT&CK facts, for the matrix and the technique pages.
// Parameters: none.
// Columns: id, name, tactics, platforms, is_subtechnique, parent, deprecated, revoked,
//   replaced_by, url.
// :params {}
MATCH (t:Technique)
RETURN t.id AS id, t.name AS name, t.tactics AS tactics, t.platforms AS platforms,
       t.is_subtechnique AS is_subtechnique, t.parent AS parent, t.deprecated AS deprecated,
       t.revoked AS revoked, t.replaced_by AS replaced_by, t.url AS url
ORDER BY id
