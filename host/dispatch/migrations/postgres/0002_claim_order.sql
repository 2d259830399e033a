-- Claims take the earliest next deadline of a role's open handoffs. Without
-- an index in that order every claim sorted the role's whole queue; with it
-- a claim reads the index from its start and stops at the first row it may
-- take (the expression is the claim query's ORDER BY, word for word).
CREATE INDEX handoffs_claim_order ON handoffs (
    role,
    (CASE WHEN acked_at IS NULL THEN ack_deadline ELSE resolve_deadline END),
    created_at,
    id
) WHERE state <> 'resolved';
