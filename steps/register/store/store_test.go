package store_test

import (
	"testing"

	"github.com/slipwayhq/slipway/core"
	"github.com/slipwayhq/slipway/core/coretest"
	"github.com/slipwayhq/slipway/steps/register/store"
)

func TestConformance(t *testing.T) {
	env, _ := coretest.NewEnv(t)
	r := coretest.Build[core.Registrar](t, env, store.Impl())
	coretest.TestRegistrar(t, r, env)
}

func TestValidateName(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"web", "web", true}, {"/web", "web", true}, {"a.b-c_d", "a.b-c_d", true}, {"9lives", "9lives", true},
		{"a", "", false}, {"_x", "", false}, {"-x", "", false}, {"//web", "", false}, {"we b", "", false}, {"wéb", "", false}, {"", "", false},
	} {
		got, err := store.ValidateName(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ValidateName(%q) = %q, %v; want %q, ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}
