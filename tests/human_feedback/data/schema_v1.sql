-- The dyadic feedback store, schema version 1, as human_feedback/store.py created it at commit 05e3586
-- (generated from its models by SQLAlchemy); tests migrate it to the current version. Both dialects'
-- SQL but for three column types, filled in per dialect by test_migrations.V1_TYPES: $key (the
-- autoincrementing primary key), $timestamp and $bytes.

CREATE TABLE annotators (
	id $key NOT NULL, 
	public_id VARCHAR(32) NOT NULL, 
	name VARCHAR(128) NOT NULL, 
	kind VARCHAR(16) NOT NULL, 
	active BOOLEAN NOT NULL, 
	created_at $timestamp NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (public_id), 
	UNIQUE (name)
);

CREATE TABLE campaigns (
	id $key NOT NULL, 
	name VARCHAR(128) NOT NULL, 
	kind VARCHAR(16) NOT NULL, 
	media_dir TEXT NOT NULL, 
	ratings_per_group INTEGER NOT NULL, 
	dataset_spec TEXT, 
	split VARCHAR(64), 
	expression_basis VARCHAR(32), 
	tokenizer JSON, 
	repeat_every INTEGER NOT NULL, 
	seed INTEGER NOT NULL, 
	config JSON NOT NULL, 
	instructions TEXT NOT NULL, 
	created_at $timestamp NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT ck_campaign_r CHECK (ratings_per_group >= 1), 
	UNIQUE (name)
);

CREATE TABLE schema_info (
	id $key NOT NULL, 
	name VARCHAR(64) NOT NULL, 
	version INTEGER NOT NULL, 
	created_at $timestamp NOT NULL, 
	PRIMARY KEY (id)
);

CREATE TABLE clips (
	id $key NOT NULL, 
	campaign_id INTEGER NOT NULL, 
	clip_id VARCHAR(256) NOT NULL, 
	split VARCHAR(64), 
	fps FLOAT NOT NULL, 
	num_frames INTEGER NOT NULL, 
	speaker_motion $bytes NOT NULL, 
	speaker_words JSON NOT NULL, 
	meta JSON NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_clip_campaign UNIQUE (campaign_id, clip_id), 
	FOREIGN KEY(campaign_id) REFERENCES campaigns (id) ON DELETE CASCADE
);

CREATE INDEX ix_clips_campaign_id ON clips (campaign_id);

CREATE TABLE credentials (
	id $key NOT NULL, 
	token_sha256 VARCHAR(64) NOT NULL, 
	role VARCHAR(16) NOT NULL, 
	annotator_id INTEGER, 
	label VARCHAR(128) NOT NULL, 
	created_at $timestamp NOT NULL, 
	revoked_at $timestamp, 
	PRIMARY KEY (id), 
	CONSTRAINT ck_credential_role CHECK (role IN ('annotator', 'admin')), 
	CONSTRAINT ck_credential_owner CHECK (role = 'admin' OR annotator_id IS NOT NULL), 
	UNIQUE (token_sha256), 
	FOREIGN KEY(annotator_id) REFERENCES annotators (id) ON DELETE CASCADE
);

CREATE TABLE candidate_groups (
	id $key NOT NULL, 
	public_id VARCHAR(32) NOT NULL, 
	campaign_id INTEGER NOT NULL, 
	clip_pk INTEGER NOT NULL, 
	position INTEGER NOT NULL, 
	created_at $timestamp NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (public_id), 
	FOREIGN KEY(campaign_id) REFERENCES campaigns (id) ON DELETE CASCADE, 
	FOREIGN KEY(clip_pk) REFERENCES clips (id) ON DELETE CASCADE
);

CREATE INDEX ix_candidate_groups_campaign_id ON candidate_groups (campaign_id);

CREATE INDEX ix_candidate_groups_clip_pk ON candidate_groups (clip_pk);

CREATE TABLE assignments (
	id $key NOT NULL, 
	public_id VARCHAR(32) NOT NULL, 
	group_id INTEGER NOT NULL, 
	annotator_id INTEGER NOT NULL, 
	kind VARCHAR(16) NOT NULL, 
	shuffle_seed INTEGER NOT NULL, 
	created_at $timestamp NOT NULL, 
	completed_at $timestamp, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_assignment_once UNIQUE (group_id, annotator_id, kind), 
	CONSTRAINT ck_assignment_kind CHECK (kind IN ('regular', 'repeat')), 
	UNIQUE (public_id), 
	FOREIGN KEY(group_id) REFERENCES candidate_groups (id) ON DELETE CASCADE, 
	FOREIGN KEY(annotator_id) REFERENCES annotators (id) ON DELETE CASCADE
);

CREATE INDEX ix_assignments_annotator_id ON assignments (annotator_id);

CREATE INDEX ix_assignments_group_id ON assignments (group_id);

CREATE TABLE candidates (
	id $key NOT NULL, 
	public_id VARCHAR(32) NOT NULL, 
	group_id INTEGER NOT NULL, 
	source VARCHAR(16) NOT NULL, 
	policy_name VARCHAR(256) NOT NULL, 
	sample_index INTEGER NOT NULL, 
	seed INTEGER, 
	num_frames INTEGER NOT NULL, 
	tokens $bytes NOT NULL, 
	tokens_dtype VARCHAR(8) NOT NULL, 
	video_path TEXT, 
	meta JSON NOT NULL, 
	created_at $timestamp NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT ck_candidate_source CHECK (source IN ('policy', 'ground_truth', 'broken')), 
	UNIQUE (public_id), 
	FOREIGN KEY(group_id) REFERENCES candidate_groups (id) ON DELETE CASCADE
);

CREATE INDEX ix_candidates_group_id ON candidates (group_id);

CREATE TABLE submissions (
	id VARCHAR(64) NOT NULL, 
	assignment_id INTEGER NOT NULL, 
	annotator_id INTEGER NOT NULL, 
	payload_sha256 VARCHAR(64) NOT NULL, 
	time_spent_ms INTEGER, 
	created_at $timestamp NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(assignment_id) REFERENCES assignments (id) ON DELETE CASCADE, 
	FOREIGN KEY(annotator_id) REFERENCES annotators (id) ON DELETE CASCADE
);

CREATE UNIQUE INDEX ix_submissions_assignment_id ON submissions (assignment_id);

CREATE TABLE ratings (
	id $key NOT NULL, 
	submission_id VARCHAR(64) NOT NULL, 
	assignment_id INTEGER NOT NULL, 
	candidate_id INTEGER NOT NULL, 
	annotator_id INTEGER NOT NULL, 
	empathy INTEGER NOT NULL, 
	appropriateness INTEGER NOT NULL, 
	engagement INTEGER NOT NULL, 
	naturalness INTEGER NOT NULL, 
	watched_ms INTEGER, 
	created_at $timestamp NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_rating_once UNIQUE (assignment_id, candidate_id), 
	CONSTRAINT ck_rating_empathy CHECK (empathy BETWEEN 1 AND 5), 
	CONSTRAINT ck_rating_appropriateness CHECK (appropriateness BETWEEN 1 AND 5), 
	CONSTRAINT ck_rating_engagement CHECK (engagement BETWEEN 1 AND 5), 
	CONSTRAINT ck_rating_naturalness CHECK (naturalness BETWEEN 1 AND 5), 
	FOREIGN KEY(submission_id) REFERENCES submissions (id) ON DELETE CASCADE, 
	FOREIGN KEY(assignment_id) REFERENCES assignments (id) ON DELETE CASCADE, 
	FOREIGN KEY(candidate_id) REFERENCES candidates (id) ON DELETE CASCADE, 
	FOREIGN KEY(annotator_id) REFERENCES annotators (id) ON DELETE CASCADE
);

CREATE INDEX ix_ratings_annotator_id ON ratings (annotator_id);

CREATE INDEX ix_ratings_candidate_id ON ratings (candidate_id);

CREATE INDEX ix_ratings_submission_id ON ratings (submission_id);
