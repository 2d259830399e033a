-- Signed policies: each published unit carries its signature file
-- (`NAME.sig`), so every node checks the same signatures against its own
-- trust store before it serves the generation. NULL: the unit was
-- published unsigned.
ALTER TABLE policy_units ADD COLUMN signatures TEXT;
