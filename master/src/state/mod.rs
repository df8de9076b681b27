//! The deterministic state machine. (Being written.)
