// Comparing two vendors: on each technique both cover (with non-deprecated rules), the
// indicators (field, op, value, unnegated) the vendor's rules use there and the other's do not.
// Parameters: vendor, other.
// Columns: technique, name, field, op, value, rules.
// :params {vendor: 'sigma', other: 'elastic'}
MATCH (a:Rule)-[:DETECTS]->(t:Technique)<-[:DETECTS]-(b:Rule)
WHERE a.vendor = $vendor AND b.vendor = $other AND a.deprecated = false
  AND b.deprecated = false
WITH DISTINCT t
MATCH (a:Rule)-[:DETECTS]->(t)
WHERE a.vendor = $vendor AND a.deprecated = false
MATCH (a)-[u:USES]->(v:Value)
WHERE u.negated = false
WITH t, v, u.op AS op, count(DISTINCT a) AS rules
WHERE NOT EXISTS {
  MATCH (b:Rule)-[w:USES]->(v)
  WHERE b.vendor = $other AND b.deprecated = false AND w.op = op AND w.negated = false
    AND EXISTS { MATCH (b)-[:DETECTS]->(t) }
}
RETURN t.id AS technique, t.name AS name, v.field AS field, op, v.value AS value, rules
ORDER BY technique, rules DESC, field, op, value
