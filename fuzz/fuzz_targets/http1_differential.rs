//! Differential: the fast codec against hyper. See `portico_fuzz::differential`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| portico_fuzz::differential::check(data));
