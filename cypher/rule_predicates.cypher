// One rule's predicate rows, as the graph holds them.
// Parameters: uid.
// Columns: field, raw_field, op, value, raw_value, negated, exclusion.
// :params {uid: 'sigma:8b3ad3a4-e4e9-4b13-a3e8-b3bd2f9a2e4c'}
MATCH (r:Rule {uid: $uid})-[u:USES]->(v:Value)
RETURN v.field AS field, u.raw_field AS raw_field, u.op AS op, v.value AS value,
       u.raw_value AS raw_value, u.negated AS negated, u.exclusion AS exclusion
ORDER BY exclusion, raw_field, op, raw_value, negated
