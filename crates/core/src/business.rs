//! Businesses (사업자): registration numbers with their check digit, names and webhook URLs.

use crate::request::{RequestError, bounded_text};
use std::fmt;

/// Digits in a business registration number (사업자등록번호).
pub const REGISTRATION_DIGITS: usize = 10;
/// The digits the check digit is computed from.
pub const REGISTRATION_PREFIX_DIGITS: usize = 9;
/// Weights of the first nine digits in the check-digit sum (National Tax Service rule).
const CHECK_WEIGHTS: [u8; REGISTRATION_PREFIX_DIGITS] = [1, 3, 7, 1, 3, 7, 1, 3, 5];
/// Where the dashes of the written form `123-45-67890` stand (byte offsets).
const DASH_POSITIONS: [usize; 2] = [3, 6];
const DASHED_LEN: usize = REGISTRATION_DIGITS + DASH_POSITIONS.len();

pub const BUSINESS_NAME_LEN_MAX: usize = 100;
/// Long enough for any real endpoint; bounded so a row and a log line stay small.
pub const WEBHOOK_URL_LEN_MAX: usize = 2_048;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BusinessError {
    #[error("registration_number must be 10 digits, written 1234567890 or 123-45-67890")]
    RegistrationNumberFormat,
    #[error("registration_number is not a valid business registration number (its check digit does not match)")]
    RegistrationNumberCheckDigit,
    #[error(
        "webhook_url must be an absolute http or https URL of at most {WEBHOOK_URL_LEN_MAX} characters, \
         without credentials, spaces or a fragment"
    )]
    WebhookUrl,
    #[error(transparent)]
    Text(#[from] RequestError),
}

/// A Korean business registration number whose check digit is right. Held as its ten digits;
/// shown as `123-45-67890`.
///
/// Accepted written forms are exactly `1234567890` and `123-45-67890`. A dash anywhere else
/// (`12-345-67890`), a single dash, spaces or surrounding whitespace are refused rather than
/// cleaned up: the number is typed by an operator from a certificate, and a dash in the wrong
/// place more likely means a different identifier (a 13-digit corporate registration number
/// `110111-1234567`, say) than a typo worth guessing at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RegistrationNumber([u8; REGISTRATION_DIGITS]);

impl RegistrationNumber {
    pub fn parse(raw: &str) -> Result<Self, BusinessError> {
        let digits = written_digits(raw).ok_or(BusinessError::RegistrationNumberFormat)?;
        let (prefix, last) = split_check_digit(&digits);
        if check_digit(&prefix) == last {
            Ok(Self(digits))
        } else {
            Err(BusinessError::RegistrationNumberCheckDigit)
        }
    }

    /// The valid number that starts with these nine digits (no dashes): its check digit
    /// appended. For test data and tools, so that no one re-implements the rule.
    pub fn with_check_digit(prefix: &str) -> Result<Self, BusinessError> {
        let bytes = prefix.as_bytes();
        if bytes.len() != REGISTRATION_PREFIX_DIGITS || !bytes.iter().all(u8::is_ascii_digit) {
            return Err(BusinessError::RegistrationNumberFormat);
        }
        let mut digits = [0; REGISTRATION_DIGITS];
        for (slot, b) in digits.iter_mut().zip(bytes) {
            *slot = b - b'0';
        }
        let (head, _) = split_check_digit(&digits);
        digits[REGISTRATION_PREFIX_DIGITS] = check_digit(&head);
        Ok(Self(digits))
    }

    /// The ten digits without dashes: the stored, unique form.
    pub fn digits(&self) -> String {
        self.0.iter().map(|d| char::from(b'0' + d)).collect()
    }
}

/// `123-45-67890`.
impl fmt::Display for RegistrationNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.digits();
        write!(f, "{}-{}-{}", &d[..3], &d[3..5], &d[5..])
    }
}

/// The check digit of a registration number whose first nine digits are `prefix`:
/// `sum = Σ dᵢ·wᵢ + ⌊d₈·5 / 10⌋` with weights `[1,3,7,1,3,7,1,3,5]`; the check digit is
/// `(10 − sum mod 10) mod 10`.
pub fn check_digit(prefix: &[u8; REGISTRATION_PREFIX_DIGITS]) -> u8 {
    let weighted: u32 = prefix
        .iter()
        .zip(CHECK_WEIGHTS)
        .map(|(&d, w)| u32::from(d) * u32::from(w))
        .sum();
    let carry = u32::from(prefix[REGISTRATION_PREFIX_DIGITS - 1]) * 5 / 10;
    let sum = weighted + carry;
    ((10 - sum % 10) % 10) as u8
}

fn split_check_digit(digits: &[u8; REGISTRATION_DIGITS]) -> ([u8; REGISTRATION_PREFIX_DIGITS], u8) {
    let mut prefix = [0; REGISTRATION_PREFIX_DIGITS];
    prefix.copy_from_slice(&digits[..REGISTRATION_PREFIX_DIGITS]);
    (prefix, digits[REGISTRATION_PREFIX_DIGITS])
}

/// The ten digit values of an accepted written form (see [`RegistrationNumber`]).
fn written_digits(raw: &str) -> Option<[u8; REGISTRATION_DIGITS]> {
    let bytes = raw.as_bytes();
    let undashed: Vec<u8> = match bytes.len() {
        REGISTRATION_DIGITS => bytes.to_vec(),
        DASHED_LEN if DASH_POSITIONS.iter().all(|&i| bytes[i] == b'-') => bytes
            .iter()
            .enumerate()
            .filter(|(i, _)| !DASH_POSITIONS.contains(i))
            .map(|(_, &b)| b)
            .collect(),
        _ => return None,
    };
    let mut digits = [0; REGISTRATION_DIGITS];
    for (slot, b) in digits.iter_mut().zip(&undashed) {
        if !b.is_ascii_digit() {
            return None;
        }
        *slot = b - b'0';
    }
    Some(digits)
}

/// The name a business is known by (trimmed, 1–100 characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusinessName(String);

impl BusinessName {
    pub fn parse(raw: &str) -> Result<Self, BusinessError> {
        Ok(Self(bounded_text("name", raw, BUSINESS_NAME_LEN_MAX)?))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Where the platform POSTs a business's webhooks: an absolute `http`/`https` URL, kept in
/// its normalised form. Credentials in the URL are refused (they would be stored and shown
/// in views and logs in clear; the webhook is authenticated by its signature instead), and so
/// is a fragment (never sent to the server). Surrounding whitespace is trimmed; whitespace or
/// control characters inside are refused rather than silently dropped by the URL parser.
/// Whether the host may be called at all (private addresses) is for delivery to decide, where
/// the name is resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUrl(String);

impl WebhookUrl {
    pub fn parse(raw: &str) -> Result<Self, BusinessError> {
        let text = raw.trim();
        let plain = !text.is_empty()
            && text.chars().count() <= WEBHOOK_URL_LEN_MAX
            && !text.chars().any(|c| c.is_whitespace() || c.is_control());
        if !plain {
            return Err(BusinessError::WebhookUrl);
        }
        let url = url::Url::parse(text).map_err(|_| BusinessError::WebhookUrl)?;
        let acceptable = matches!(url.scheme(), "http" | "https")
            && url.host().is_some()
            && url.username().is_empty()
            && url.password().is_none()
            && url.fragment().is_none()
            && url.as_str().chars().count() <= WEBHOOK_URL_LEN_MAX;
        if acceptable {
            Ok(Self(url.into()))
        } else {
            Err(BusinessError::WebhookUrl)
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Registration numbers of well-known companies, as published on their own sites.
    const KNOWN_VALID: [&str; 3] = [
        "124-81-00998", // Samsung Electronics
        "220-81-62517", // NAVER
        "120-81-47521", // Kakao
    ];

    fn number(digits: &[u8; REGISTRATION_DIGITS]) -> String {
        digits.iter().map(|d| char::from(b'0' + d)).collect()
    }

    fn dashed(undashed: &str) -> String {
        format!("{}-{}-{}", &undashed[..3], &undashed[3..5], &undashed[5..])
    }

    /// A valid number as ten digit values, from nine.
    fn valid_digits(prefix: [u8; REGISTRATION_PREFIX_DIGITS]) -> [u8; REGISTRATION_DIGITS] {
        let mut digits = [0; REGISTRATION_DIGITS];
        digits[..REGISTRATION_PREFIX_DIGITS].copy_from_slice(&prefix);
        digits[REGISTRATION_PREFIX_DIGITS] = check_digit(&prefix);
        digits
    }

    fn prefixes() -> impl Strategy<Value = [u8; REGISTRATION_PREFIX_DIGITS]> {
        proptest::array::uniform9(0u8..=9)
    }

    #[test]
    fn known_numbers_are_valid_and_shown_dashed() {
        for known in KNOWN_VALID {
            let n = RegistrationNumber::parse(known).unwrap();
            assert_eq!(n.to_string(), known);
            assert_eq!(n.digits(), known.replace('-', ""));
            assert_eq!(RegistrationNumber::parse(&n.digits()).unwrap(), n);
        }
        // Samsung's number with its last digit off by one.
        assert_eq!(
            RegistrationNumber::parse("124-81-00999"),
            Err(BusinessError::RegistrationNumberCheckDigit)
        );
    }

    #[test]
    fn check_digit_follows_the_rule_worked_by_hand() {
        // 1·1 + 2·3 + 4·7 + 8·1 + 1·3 + 0·7 + 0·1 + 9·3 + 9·5 = 118; ⌊9·5/10⌋ = 4; 122 → 8.
        assert_eq!(check_digit(&[1, 2, 4, 8, 1, 0, 0, 9, 9]), 8);
        // A sum that is a multiple of ten gives 0, not 10.
        assert_eq!(check_digit(&[0; 9]), 0);
        assert_eq!(check_digit(&[1, 3, 0, 0, 0, 0, 0, 0, 0]), 0);
    }

    #[test]
    fn only_the_two_written_forms_are_accepted() {
        assert!(RegistrationNumber::parse("1248100998").is_ok());
        assert!(RegistrationNumber::parse("124-81-00998").is_ok());
        for bad in [
            "",
            "124-8100998",
            "12481-00998",
            "12-481-00998",
            "1248-1-00998",
            "124--8100998",
            "124-81-0099-8",
            "-124810099",
            " 124-81-00998",
            "124-81-00998 ",
            "124 81 00998",
            "124-81 00998",
            "124810099",
            "12481009988",
            "124-81-0099",
            "124_81_00998",
            "12a-81-00998",
            "+124810099",
            "１２４-８１-００９９８",
        ] {
            assert_eq!(
                RegistrationNumber::parse(bad),
                Err(BusinessError::RegistrationNumberFormat),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn with_check_digit_takes_exactly_nine_digits() {
        assert_eq!(
            RegistrationNumber::with_check_digit("124810099").unwrap().to_string(),
            "124-81-00998"
        );
        for bad in ["", "12481009", "1248100998", "124-81-009", "12481009a"] {
            assert!(RegistrationNumber::with_check_digit(bad).is_err(), "{bad:?}");
        }
    }

    /// Why no single-digit error slips through: each position's contribution to the sum mod
    /// 10 is a bijection of its digit. Weights 1, 3 and 7 are coprime to 10; the last weighted
    /// digit contributes `5·d + ⌊5·d/10⌋ = 5·d + ⌊d/2⌋`, which takes 0,5,1,6,2,7,3,8,4,9 for
    /// d = 0..9 — all different, so the carry term repairs what weight 5 alone would miss
    /// (5·d mod 10 only tells odd from even). The check digit itself is unique per prefix.
    #[test]
    fn each_weighted_position_maps_digits_one_to_one() {
        for position in 0..REGISTRATION_PREFIX_DIGITS {
            let mut seen = [false; 10];
            for d in 0..=9u8 {
                let mut prefix = [0; REGISTRATION_PREFIX_DIGITS];
                prefix[position] = d;
                let contribution = (10 - u32::from(check_digit(&prefix))) % 10;
                assert!(!seen[contribution as usize], "position {position} digit {d}");
                seen[contribution as usize] = true;
            }
        }
    }

    #[test]
    fn names_and_webhook_urls() {
        assert_eq!(BusinessName::parse("  가나상사 ").unwrap().as_str(), "가나상사");
        assert!(BusinessName::parse(" ").is_err());
        assert!(BusinessName::parse(&"가".repeat(BUSINESS_NAME_LEN_MAX + 1)).is_err());

        assert_eq!(
            WebhookUrl::parse(" https://Shop.Example.com/hooks?x=1 ")
                .unwrap()
                .as_str(),
            "https://shop.example.com/hooks?x=1"
        );
        assert!(WebhookUrl::parse("http://127.0.0.1:9000/h").is_ok());
        let long_path = "a".repeat(WEBHOOK_URL_LEN_MAX);
        for bad in [
            "",
            "shop.example.com/hooks",
            "/hooks",
            "ftp://shop.example.com/",
            "mailto:ops@example.com",
            "https://",
            "https://user:pw@shop.example.com/",
            "https://user@shop.example.com/",
            "https://shop.example.com/#frag",
            "https://shop.example.com/a b",
            "https://shop.example.com/a\tb",
            "https://shop\n.example.com/",
            &format!("https://shop.example.com/{long_path}"),
        ] {
            assert_eq!(WebhookUrl::parse(bad), Err(BusinessError::WebhookUrl), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn every_prefix_has_exactly_one_valid_check_digit(prefix in prefixes()) {
            let prefix_text = number(&valid_digits(prefix))[..REGISTRATION_PREFIX_DIGITS].to_owned();
            let valid: Vec<u8> = (0..=9u8)
                .filter(|d| RegistrationNumber::parse(&format!("{prefix_text}{d}")).is_ok())
                .collect();
            prop_assert_eq!(valid, vec![check_digit(&prefix)]);
            let built = RegistrationNumber::with_check_digit(&prefix_text).unwrap();
            prop_assert_eq!(built.digits(), number(&valid_digits(prefix)));
        }

        /// Every single-digit substitution is caught, at every position, with no exception
        /// (see `each_weighted_position_maps_digits_one_to_one` for why).
        #[test]
        fn changing_any_one_digit_is_detected(
            prefix in prefixes(),
            position in 0..REGISTRATION_DIGITS,
            shift in 1u8..=9,
        ) {
            let mut digits = valid_digits(prefix);
            digits[position] = (digits[position] + shift) % 10;
            prop_assert_eq!(
                RegistrationNumber::parse(&number(&digits)),
                Err(BusinessError::RegistrationNumberCheckDigit)
            );
        }

        /// What the rule cannot see: swapping two neighbouring digits a ≠ b among the first
        /// eight changes the sum by (wᵢ − wᵢ₊₁)(b − a), and the weight differences (−2, −4, 6)
        /// are all even, so the swap goes unnoticed exactly when a and b differ by 5.
        #[test]
        fn neighbour_swaps_in_the_first_eight_digits_are_missed_only_five_apart(
            prefix in prefixes(),
            position in 0..7usize,
        ) {
            let original = valid_digits(prefix);
            let mut swapped = original;
            swapped.swap(position, position + 1);
            prop_assume!(swapped != original);
            let missed = original[position].abs_diff(original[position + 1]) == 5;
            prop_assert_eq!(RegistrationNumber::parse(&number(&swapped)).is_ok(), missed);
        }

        #[test]
        fn dashes_do_not_change_the_number(prefix in prefixes()) {
            let undashed = number(&valid_digits(prefix));
            let plain = RegistrationNumber::parse(&undashed).unwrap();
            let with_dashes = RegistrationNumber::parse(&dashed(&undashed)).unwrap();
            prop_assert_eq!(plain, with_dashes);
            prop_assert_eq!(plain.to_string(), dashed(&undashed));
            prop_assert_eq!(plain.digits(), undashed);
        }

        /// One dash, or two anywhere but `123-45-67890`, is a format error even on a number
        /// whose digits are valid.
        #[test]
        fn dashes_anywhere_else_are_refused(
            prefix in prefixes(),
            first in 0..=REGISTRATION_DIGITS,
            second in proptest::option::of(0..=REGISTRATION_DIGITS + 1),
        ) {
            let undashed = number(&valid_digits(prefix));
            let mut text = undashed.clone();
            text.insert(first, '-');
            if let Some(second) = second {
                text.insert(second, '-');
            }
            prop_assume!(text != dashed(&undashed));
            prop_assert_eq!(RegistrationNumber::parse(&text), Err(BusinessError::RegistrationNumberFormat));
        }
    }
}
