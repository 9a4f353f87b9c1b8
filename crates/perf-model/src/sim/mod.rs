//! Serving simulator (in progress).
