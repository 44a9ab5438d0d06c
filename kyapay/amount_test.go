package kyapay

import (
	"encoding/json"
	"errors"
	"math/big"
	"testing"
)

func TestParseAmount(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in     string
		micros int64
		str    string
		err    error
	}{
		{"15", 15_000_000, "15", nil},
		{"0.01", 10_000, "0.01", nil},
		{"0.010000", 10_000, "0.01", nil},
		{"15.000000", 15_000_000, "15", nil},
		{"4.999999", 4_999_999, "4.999999", nil},
		{"0", 0, "0", nil},
		{"000.5", 500_000, "0.5", nil},
		{"999999999999.999999", 999_999_999_999_999_999, "999999999999.999999", nil},
		{"1000000000000", 0, "", ErrAmountRange},
		{"0.0000001", 0, "", ErrAmountPrecision},
		{"0.0000010", 0, "", ErrAmountPrecision},
		{"-1", 0, "", ErrAmountNegative},
		{"+1", 0, "", ErrAmountSyntax},
		{"1e3", 0, "", ErrAmountSyntax},
		{"1E-2", 0, "", ErrAmountSyntax},
		{"NaN", 0, "", ErrAmountSyntax},
		{"Inf", 0, "", ErrAmountSyntax},
		{"", 0, "", ErrAmountSyntax},
		{".5", 0, "", ErrAmountSyntax},
		{"5.", 0, "", ErrAmountSyntax},
		{"1.2.3", 0, "", ErrAmountSyntax},
		{" 1", 0, "", ErrAmountSyntax},
		{"1 ", 0, "", ErrAmountSyntax},
		{"1,5", 0, "", ErrAmountSyntax},
		{"０", 0, "", ErrAmountSyntax},
	}
	for _, tt := range tests {
		a, err := ParseAmount(tt.in)
		if tt.err != nil {
			if !errors.Is(err, tt.err) {
				t.Errorf("ParseAmount(%q) err = %v; want %v", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseAmount(%q) err = %v", tt.in, err)
			continue
		}
		if a.Micros() != tt.micros || a.String() != tt.str {
			t.Errorf("ParseAmount(%q) = %d %q; want %d %q", tt.in, a.Micros(), a.String(), tt.micros, tt.str)
		}
	}
}

func TestAmountArithmetic(t *testing.T) {
	t.Parallel()
	bal := MustParseAmount("0.03")
	price := MustParseAmount("0.01")
	for i := 0; i < 3; i++ {
		var err error
		if bal, err = bal.Sub(price); err != nil {
			t.Fatalf("Sub %d: %v", i, err)
		}
	}
	if !bal.IsZero() {
		t.Fatalf("0.03 - 3×0.01 = %v; want 0", bal)
	}
	if _, err := bal.Sub(price); !errors.Is(err, ErrAmountNegative) {
		t.Errorf("0 - 0.01 err = %v; want ErrAmountNegative", err)
	}
	// The classic float trap: 0.1 + 0.2 must be exactly 0.3.
	sum, err := MustParseAmount("0.1").Add(MustParseAmount("0.2"))
	if err != nil || sum != MustParseAmount("0.3") || sum.String() != "0.3" {
		t.Errorf("0.1+0.2 = %v, %v", sum, err)
	}
	max := MustParseAmount("999999999999.999999")
	if _, err := max.Add(MustParseAmount("0.000001")); !errors.Is(err, ErrAmountRange) {
		t.Errorf("overflow err = %v", err)
	}
	if MustParseAmount("0.02").Cmp(MustParseAmount("0.019999")) != 1 || price.Cmp(price) != 0 {
		t.Error("Cmp wrong")
	}
	if _, err := AmountFromMicros(-1); !errors.Is(err, ErrAmountNegative) {
		t.Error("AmountFromMicros(-1) accepted")
	}
}

func TestAmountJSON(t *testing.T) {
	t.Parallel()
	var v struct {
		A Amount `json:"a"`
		B Amount `json:"b"`
	}
	if err := json.Unmarshal([]byte(`{"a":"15.000000","b":0.25}`), &v); err != nil {
		t.Fatal(err)
	}
	if v.A.String() != "15" || v.B.String() != "0.25" {
		t.Errorf("got %v %v", v.A, v.B)
	}
	out, _ := json.Marshal(v)
	if string(out) != `{"a":"15","b":"0.25"}` {
		t.Errorf("Marshal = %s", out)
	}
	for _, bad := range []string{`{"a":1e2}`, `{"a":"-1"}`, `{"a":true}`, `{"a":"0.1234567"}`} {
		if err := json.Unmarshal([]byte(bad), &v); err == nil {
			t.Errorf("Unmarshal(%s) accepted", bad)
		}
	}
}

// FuzzParseAmount checks that every accepted amount is exactly the decimal
// big.Rat reading of its input, and formats back to an equal amount.
func FuzzParseAmount(f *testing.F) {
	for _, s := range []string{"15", "0.01", "0.010000", "15.000000", "1e3", "-1", ".5", "999999999999.999999", "NaN", "0x10"} {
		f.Add(s)
	}
	million := big.NewRat(1_000_000, 1)
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseAmount(s)
		if err != nil {
			return
		}
		r, ok := new(big.Rat).SetString(s)
		if !ok {
			t.Fatalf("ParseAmount(%q) accepted what big.Rat refuses", s)
		}
		want := new(big.Rat).Mul(r, million)
		if !want.IsInt() || want.Num().Int64() != a.Micros() || a.Micros() < 0 {
			t.Fatalf("ParseAmount(%q) = %d micros; want %v", s, a.Micros(), want)
		}
		b, err := ParseAmount(a.String())
		if err != nil || b != a {
			t.Fatalf("round trip of %q via %q: %v, %v", s, a.String(), b, err)
		}
	})
}
