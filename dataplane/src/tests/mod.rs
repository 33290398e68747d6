//! Unit tests that reach into several modules' crate-private parts.

mod esp_known_answers;
