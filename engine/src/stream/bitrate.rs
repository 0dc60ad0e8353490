//! Stream bitrates as users write them: `2Mbit`, `800kbit`, `1.5Gbit`, `500000`.

use std::fmt;
use std::str::FromStr;

use super::StreamError;

/// Bits per second.
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
pub struct Bitrate(f64);

impl Bitrate {
    /// Bits per second.
    pub fn bits_per_s(self) -> f64 {
        self.0
    }

    /// Bytes per second.
    pub fn bytes_per_s(self) -> f64 {
        self.0 / 8.0
    }
}

impl FromStr for Bitrate {
    type Err = StreamError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let t = text.trim().to_ascii_lowercase();
        let (num, mult) = [("gbit", 1e9), ("mbit", 1e6), ("kbit", 1e3), ("bit", 1.0)]
            .iter()
            .find_map(|(suffix, m)| t.strip_suffix(suffix).map(|n| (n, *m)))
            .unwrap_or((t.as_str(), 1.0));
        let bad = |reason| StreamError::BadBitrate {
            text: text.to_string(),
            reason,
        };
        let value: f64 = num
            .trim()
            .parse()
            .map_err(|_| bad("expected a number with an optional unit: 2Mbit, 800kbit, 1Gbit"))?;
        if !value.is_finite() || value <= 0.0 {
            return Err(bad("must be positive"));
        }
        Ok(Bitrate(value * mult))
    }
}

impl fmt::Display for Bitrate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.1} Mbit/s", self.0 / 1e6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        let b = |t: &str| t.parse::<Bitrate>().unwrap().bits_per_s();
        assert_eq!(b("2Mbit"), 2e6);
        assert_eq!(b("800kbit"), 8e5);
        assert_eq!(b("1.5Gbit"), 1.5e9);
        assert_eq!(b(" 500000 "), 5e5);
        assert_eq!(b("12bit"), 12.0);
        for bad in ["", "fast", "-1Mbit", "0", "NaNMbit", "infMbit"] {
            assert!(bad.parse::<Bitrate>().is_err(), "{bad}");
        }
    }
}
