package kyapay

import (
	"errors"
	"fmt"
	"math"
	"strconv"

	textclip "github.com/kyapay/kyapay-go/internal/clip"
)

// AmountDecimals is the number of decimal places an [Amount] carries: USD
// amounts in KYAPay tokens and in Skyfire's charge API have at most six
// (micro-dollars, the settlement unit of USDC).
const AmountDecimals = 6

const microsPerUnit = 1_000_000

// maxAmountDigits bounds the integer part so that every parsed amount fits
// in an int64 of micro-units with room for one addition.
const maxIntegerDigits = 12

// Amount is an exact, non-negative USD amount with at most six decimal
// places. It is stored as an integer number of micro-dollars, so arithmetic
// and comparison are exact; no floating point is involved anywhere.
//
// The zero value is a valid amount of zero.
type Amount struct {
	micros int64
}

// Errors returned by [ParseAmount] and amount arithmetic. They are matched
// with [errors.Is].
var (
	ErrAmountSyntax    = errors.New("kyapay: amount is not a plain decimal number")
	ErrAmountPrecision = errors.New("kyapay: amount has more than 6 decimal places")
	ErrAmountNegative  = errors.New("kyapay: amount is negative")
	ErrAmountRange     = errors.New("kyapay: amount is out of range")
)

// ParseAmount parses a plain decimal string such as "15", "0.01",
// "0.010000" or "15.000000". It refuses signs, exponents, spaces, NaN and
// infinity spellings, a bare or trailing decimal point, more than six
// decimal places, and integer parts longer than 12 digits.
func ParseAmount(s string) (Amount, error) {
	if s == "" {
		return Amount{}, fmt.Errorf("%w: empty", ErrAmountSyntax)
	}
	if s[0] == '-' {
		return Amount{}, ErrAmountNegative
	}
	var intPart, fracPart string
	dot := -1
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
		case c == '.' && dot < 0:
			dot = i
		default:
			return Amount{}, fmt.Errorf("%w: %q", ErrAmountSyntax, clip(s))
		}
	}
	if dot < 0 {
		intPart = s
	} else {
		intPart, fracPart = s[:dot], s[dot+1:]
		if intPart == "" || fracPart == "" {
			return Amount{}, fmt.Errorf("%w: %q", ErrAmountSyntax, clip(s))
		}
	}
	if len(fracPart) > AmountDecimals {
		// Trailing zeros beyond the sixth place carry no value, but a
		// price or balance that spells them is suspicious; refuse.
		return Amount{}, fmt.Errorf("%w: %q", ErrAmountPrecision, clip(s))
	}
	// Strip leading zeros so the length check counts significant digits.
	for len(intPart) > 1 && intPart[0] == '0' {
		intPart = intPart[1:]
	}
	if len(intPart) > maxIntegerDigits {
		return Amount{}, fmt.Errorf("%w: %q", ErrAmountRange, clip(s))
	}
	var micros int64
	for i := 0; i < len(intPart); i++ {
		micros = micros*10 + int64(intPart[i]-'0')
	}
	micros *= microsPerUnit
	scale := int64(microsPerUnit / 10)
	for i := 0; i < len(fracPart); i++ {
		micros += int64(fracPart[i]-'0') * scale
		scale /= 10
	}
	return Amount{micros: micros}, nil
}

// MustParseAmount is like [ParseAmount] but panics on error. It is meant for
// constants in program initialisation and tests.
func MustParseAmount(s string) Amount {
	a, err := ParseAmount(s)
	if err != nil {
		panic(err)
	}
	return a
}

// AmountFromMicros returns the amount of the given number of micro-dollars
// (millionths of a dollar). It refuses negative values.
func AmountFromMicros(micros int64) (Amount, error) {
	if micros < 0 {
		return Amount{}, ErrAmountNegative
	}
	if micros > maxMicros {
		return Amount{}, ErrAmountRange
	}
	return Amount{micros: micros}, nil
}

// maxMicros is the largest amount ParseAmount can produce.
const maxMicros = 999_999_999_999_999_999

// Micros returns the amount in micro-dollars, the unit of the token's
// "val" claim.
func (a Amount) Micros() int64 { return a.micros }

// IsZero reports whether the amount is zero.
func (a Amount) IsZero() bool { return a.micros == 0 }

// Cmp compares a and b and returns -1, 0 or +1.
func (a Amount) Cmp(b Amount) int {
	switch {
	case a.micros < b.micros:
		return -1
	case a.micros > b.micros:
		return 1
	}
	return 0
}

// Add returns a+b, or [ErrAmountRange] if the sum leaves the range of
// amounts.
func (a Amount) Add(b Amount) (Amount, error) {
	if a.micros > math.MaxInt64-b.micros || a.micros+b.micros > maxMicros {
		return Amount{}, ErrAmountRange
	}
	return Amount{micros: a.micros + b.micros}, nil
}

// Sub returns a-b, or [ErrAmountNegative] if b is greater than a.
func (a Amount) Sub(b Amount) (Amount, error) {
	if b.micros > a.micros {
		return Amount{}, ErrAmountNegative
	}
	return Amount{micros: a.micros - b.micros}, nil
}

// String formats the amount as the shortest exact decimal: "0", "15",
// "0.01", "4.999999". This is the form sent as chargeAmount to Skyfire's
// charge API.
func (a Amount) String() string {
	var buf [32]byte
	return string(a.appendTo(buf[:0]))
}

// appendTo appends the shortest exact decimal form of a to b.
func (a Amount) appendTo(b []byte) []byte {
	b = strconv.AppendInt(b, a.micros/microsPerUnit, 10)
	frac := a.micros % microsPerUnit
	if frac == 0 {
		return b
	}
	var digits [AmountDecimals]byte
	for i := AmountDecimals - 1; i >= 0; i-- {
		digits[i] = byte('0' + frac%10)
		frac /= 10
	}
	n := AmountDecimals
	for digits[n-1] == '0' {
		n--
	}
	b = append(b, '.')
	return append(b, digits[:n]...)
}

// MarshalText implements [encoding.TextMarshaler] with the format of
// [Amount.String].
func (a Amount) MarshalText() ([]byte, error) {
	return a.appendTo(nil), nil
}

// UnmarshalText implements [encoding.TextUnmarshaler] with the rules of
// [ParseAmount].
func (a *Amount) UnmarshalText(text []byte) error {
	v, err := ParseAmount(string(text))
	if err != nil {
		return err
	}
	*a = v
	return nil
}

// MarshalJSON encodes the amount as a JSON string, the form Skyfire uses
// ("0.01"), so no reader ever sees it as a floating-point number.
func (a Amount) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, 24)
	b = append(b, '"')
	b = a.appendTo(b)
	return append(b, '"'), nil
}

// UnmarshalJSON accepts a JSON string holding a decimal ("15.000000") or a
// bare JSON number written as a plain decimal (15, 0.01). The number's text
// is parsed exactly; exponents are refused.
func (a *Amount) UnmarshalJSON(data []byte) error {
	if len(data) >= 2 && data[0] == '"' && data[len(data)-1] == '"' {
		data = data[1 : len(data)-1]
	}
	return a.UnmarshalText(data)
}

// maxQuoted bounds the bytes of untrusted input an error message quotes.
const maxQuoted = 64

// clip shortens untrusted input quoted in an error message or a log to
// maxQuoted bytes, cut at a UTF-8 boundary, followed by a marker that
// gives the full length, so a forged 10 KB claim cannot flood a log line.
func clip(s string) string { return textclip.Marked(s, maxQuoted) }

// clipQuote returns clip(s) as a Go-quoted string. The result is a new
// string: s may point into a buffer that must not be retained.
func clipQuote(s string) string { return strconv.Quote(clip(s)) }
