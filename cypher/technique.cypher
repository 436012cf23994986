// The technique itself: name, tactics, platforms, and how many rules detect it.
// Parameters: technique, include_subtechniques, include_deprecated.
// Columns: id, name, tactics, platforms, is_subtechnique, parent, deprecated, revoked,
//   replaced_by, url, subtechniques, rules.
// :params {technique: 'T1505', include_subtechniques: true, include_deprecated: false}
MATCH (t:Technique {id: $technique})
OPTIONAL MATCH (sub:Technique)-[:SUBTECHNIQUE_OF]->(t)
WITH t, count(DISTINCT sub) AS subtechniques
MATCH (covered:Technique)
WHERE covered.id = $technique OR ($include_subtechniques AND covered.parent = $technique)
OPTIONAL MATCH (r:Rule)-[:DETECTS]->(covered)
WHERE $include_deprecated OR r.deprecated = false
RETURN t.id AS id, t.name AS name, t.tactics AS tactics, t.platforms AS platforms,
       t.is_subtechnique AS is_subtechnique, t.parent AS parent, t.deprecated AS deprecated,
       t.revoked AS revoked, t.replaced_by AS replaced_by, t.url AS url, subtechniques,
       count(DISTINCT r) AS rules
