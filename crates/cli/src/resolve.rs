//! Finding model configs: catalog, local files, the Hugging Face cache.
