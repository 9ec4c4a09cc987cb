//! Enrichment (being built): turns parsed fields into records.
