//! Ignis actors: the components of a node (distributor, ingester, querier, …),
//! each an actix actor supervised per tenant, plus the ingest decoding they share.

pub mod ingest;
