//! numpy .npy files (being written).
