//! The decoder of the values a guest sends the host, on arbitrary input: it must return a
//! value or an error, never panic, hang or overflow the stack, and never hold more of the
//! host's memory than the budget it was given.
#![no_main]

use libfuzzer_sys::fuzz_target;
use metaexec::budget::HostBudget;
use metaexec::guest_value::decode;

/// Small enough that the RSS limit of the fuzzer would catch a decoder that allocates
/// past its budget.
const BUDGET: usize = 64 << 20;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let budget = HostBudget::new(BUDGET);
    let mut held = budget.empty();
    let _ = decode(text, &mut held);
    assert!(budget.peak() <= BUDGET);
    drop(held);
    assert_eq!(budget.used(), 0);
});
