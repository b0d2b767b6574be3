//! What the host gives the core: the wall clock, cryptographic randomness, and (in wasm) a panic
//! hook that prints a panic's message before the instance traps.

/// Wall-clock nanoseconds since the epoch, from the host.
#[cfg(target_arch = "wasm32")]
pub fn wall_clock_nanos() -> u64 {
    // Date.now() is whole milliseconds; the store's hybrid logical clock orders writes within one.
    (js_sys::Date::now() as u64).saturating_mul(1_000_000)
}

/// Wall-clock nanoseconds since the epoch, from the host.
#[cfg(not(target_arch = "wasm32"))]
pub fn wall_clock_nanos() -> u64 {
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    u64::try_from(since_epoch.as_nanos()).unwrap_or(u64::MAX)
}

/// Fills `buf` with cryptographically secure random bytes: the Web Crypto API's
/// `crypto.getRandomValues` in wasm (getrandom's `wasm_js` backend: browsers and Node ≥ 19), the
/// operating system's generator natively.
pub fn fill_random(buf: &mut [u8]) -> Result<(), String> {
    getrandom::fill(buf).map_err(|e| e.to_string())
}

/// Prints panics to `console.error` (once per instance): a panic in wasm traps with a bare
/// "unreachable", so without this the reason would be lost.
#[cfg(target_arch = "wasm32")]
pub fn install_panic_hook() {
    use std::sync::Once;
    use wasm_bindgen::prelude::*;

    #[wasm_bindgen]
    extern "C" {
        #[wasm_bindgen(js_namespace = console, js_name = error)]
        fn console_error(message: &str);
    }

    static ONCE: Once = Once::new();
    // After a panic the instance keeps "panicking" (wasm aborts without unwinding), and setting
    // a hook then would panic again.
    if std::thread::panicking() {
        return;
    }
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            console_error(&format!("strata-wasm panicked (this is a bug; please report it): {info}"));
            previous(info);
        }));
    });
}

/// Natively panics unwind and print themselves.
#[cfg(not(target_arch = "wasm32"))]
pub fn install_panic_hook() {}

#[cfg(test)]
mod tests {
    #[cfg(all(target_family = "wasm", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    #[test]
    fn random_bytes_differ() {
        let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
        fill_random(&mut a).unwrap();
        fill_random(&mut b).unwrap();
        assert_ne!(a, b);
        assert_ne!(a, [0u8; 32]);
    }

    #[test]
    fn clock_is_the_hosts() {
        // After 2025-06: a real wall clock.
        assert!(wall_clock_nanos() > 1_750_000_000_000_000_000);
    }
}
