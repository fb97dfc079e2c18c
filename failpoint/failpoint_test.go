package failpoint

import (
	"errors"
	"testing"
)

func TestInjectActions(t *testing.T) {
	if err := Inject("nothing"); err != nil {
		t.Fatalf("unarmed point returned %v", err)
	}
	if err := LoadSpec("a=error; b=2*panic ;c=sleep(1ms)"); err != nil {
		t.Fatal(err)
	}
	defer func() { Disable("a"); Disable("b"); Disable("c") }()
	if err := Inject("a"); !errors.Is(err, ErrInjected) {
		t.Fatalf("a: got %v, want ErrInjected", err)
	}
	if err := Inject("c"); err != nil {
		t.Fatalf("c: %v", err)
	}
	for i := 0; i < 2; i++ {
		func() {
			defer func() {
				if recover() == nil {
					t.Fatalf("b hit %d did not panic", i)
				}
			}()
			_ = Inject("b")
		}()
	}
	if err := Inject("b"); err != nil {
		t.Fatalf("b after its count: %v", err)
	}
	if Hits("b") != 2 {
		t.Fatalf("hits b = %d, want 2", Hits("b"))
	}
}

func TestAfter(t *testing.T) {
	if err := Enable("d", "after(2):1*error"); err != nil {
		t.Fatal(err)
	}
	defer Disable("d")
	var errs int
	for i := 0; i < 5; i++ {
		if Inject("d") != nil {
			errs++
			if i != 2 {
				t.Fatalf("error at hit %d, want hit 2", i)
			}
		}
	}
	if errs != 1 {
		t.Fatalf("errors = %d, want 1", errs)
	}
}

func TestParseErrors(t *testing.T) {
	for _, spec := range []string{"x", "a=boom", "a=0*panic", "a=sleep(x)", "a=after(x):panic"} {
		if err := LoadSpec(spec); err == nil {
			t.Errorf("LoadSpec(%q) accepted", spec)
		}
	}
}
