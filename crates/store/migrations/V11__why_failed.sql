-- Why a failed delivery was not tried again (the retry rule that applied, or why it
-- was failed without an attempt), for `deliveries show` and the API.
ALTER TABLE deliveries ADD COLUMN why_failed text;
