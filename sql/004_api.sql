-- evmonitor API schema: tokens and browser sessions (see evmonitor/api/).
-- Applied at every start after the other files; every statement is idempotent.

-- A token is shown once, when it is created; only its SHA-256 is kept, so a copy of this table
-- lets nobody in. Tokens are 32 random bytes, so a plain hash (no salt, no stretching) is enough.
CREATE TABLE IF NOT EXISTS api_tokens (
    id                  bigserial PRIMARY KEY,
    name                text NOT NULL,
    scope               text NOT NULL CHECK (scope IN ('read', 'operate')),
    token_sha256        text NOT NULL UNIQUE,
    prefix              text NOT NULL,                 -- the first characters, to tell tokens apart in a list
    created_at          timestamptz NOT NULL DEFAULT now(),
    last_used_at        timestamptz,
    revoked_at          timestamptz
);

-- A browser signed in with a token: the cookie holds a random id, this row its hash. Revoking
-- the token ends its browser sessions too (the join in evmonitor/api/tokens.py).
CREATE TABLE IF NOT EXISTS api_browser_sessions (
    id_sha256           text PRIMARY KEY,
    token_id            bigint NOT NULL REFERENCES api_tokens (id) ON DELETE CASCADE,
    created_at          timestamptz NOT NULL DEFAULT now(),
    expires_at          timestamptz NOT NULL
);

-- Operators acknowledge alerts; the beat jobs own every other column of `alerts`.
ALTER TABLE alerts ADD COLUMN IF NOT EXISTS acknowledged_at timestamptz;
ALTER TABLE alerts ADD COLUMN IF NOT EXISTS acknowledged_by text;
ALTER TABLE alerts ADD COLUMN IF NOT EXISTS resolved_by text;
