// Site batch: every event type, for the event-type pages.
// Parameters: none.
// Columns: event_type, name, source.
// :params {}
MATCH (e:EventType)
RETURN e.key AS event_type, e.name AS name, e.source AS source
ORDER BY event_type
