//! The PostgreSQL role (to be written).
