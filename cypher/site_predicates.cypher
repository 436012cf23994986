// Site batch: every rule's predicate rows (the `rule_predicates` columns) with the rule's uid
// and the row's corpus reach, ordered as `rule_predicates` orders one rule's rows (then by
// folded field and value, so that the order is complete).
// Parameters: none.
// Columns: uid, field, raw_field, op, value, raw_value, negated, exclusion, reach.
// :params {}
MATCH (r:Rule)-[u:USES]->(v:Value)
RETURN r.uid AS uid, v.field AS field, u.raw_field AS raw_field, u.op AS op, v.value AS value,
       u.raw_value AS raw_value, u.negated AS negated, u.exclusion AS exclusion,
       u.reach AS reach
ORDER BY uid, exclusion, raw_field, op, raw_value, negated, field, value
