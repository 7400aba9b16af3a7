//! CEL expressions over dynamic records (placeholder: being written).
