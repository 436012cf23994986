// Rule neighbours: the rules sharing most indicators with one rule (same field, op and value,
// negated alike), with the shared count and each neighbour's own indicator count.
// Parameters: uid, limit, include_deprecated.
// Columns: uid, title, vendor, shared, indicators.
// :params {uid: 'sigma:ca2092a1-c273-4878-9b4b-0d60115bf5ea', limit: 10, include_deprecated: false}
MATCH (r:Rule {uid: $uid})-[u:USES]->(v:Value)<-[w:USES]-(other:Rule)
WHERE other.uid <> $uid AND w.op = u.op AND w.negated = u.negated
  AND ($include_deprecated OR other.deprecated = false)
WITH DISTINCT other, v, u.op AS op, u.negated AS negated
WITH other, count(*) AS shared
MATCH (other)-[x:USES]->(y:Value)
WITH DISTINCT other, shared, y, x.op AS op, x.negated AS negated
WITH other, shared, count(*) AS indicators
RETURN other.uid AS uid, other.title AS title, other.vendor AS vendor, shared, indicators
ORDER BY shared DESC, indicators, uid
LIMIT $limit
