package store

import (
	"math/rand/v2"
	"strconv"
)

// The words of generated names: adjectives, and the surnames of scientists, engineers and
// explorers. Our own selection.
var (
	adjectives = [...]string{
		"agile", "amber", "ardent", "blissful", "bold", "brave", "bright", "calm", "candid",
		"careful", "cheerful", "clever", "cosmic", "crisp", "curious", "daring", "deft",
		"devoted", "eager", "earnest", "elated", "epic", "fearless", "fervent", "festive",
		"fond", "frosty", "gallant", "gentle", "gifted", "glad", "golden", "gracious",
		"hardy", "hopeful", "humble", "jolly", "jovial", "keen", "kind", "lively", "loyal",
		"lucid", "lucky", "merry", "mellow", "mighty", "modest", "nimble", "noble", "patient",
		"peaceful", "plucky", "polite", "proud", "quiet", "quirky", "radiant", "rapid",
		"serene", "sharp", "shiny", "silent", "sincere", "snappy", "spry", "stoic", "sunny",
		"swift", "tender", "tidy", "upbeat", "valiant", "vivid", "warm", "wise", "witty",
		"zealous", "zesty",
	}
	surnames = [...]string{
		"agnesi", "al_khwarizmi", "ampere", "archimedes", "babbage", "bardeen", "bell",
		"bohr", "boole", "bose", "brahe", "carson", "cerf", "chandrasekhar", "copernicus",
		"curie", "darwin", "dijkstra", "dirac", "edison", "einstein", "euclid", "euler",
		"faraday", "fermat", "fermi", "feynman", "franklin", "galileo", "gauss", "germain",
		"goodall", "hamilton", "hawking", "heisenberg", "hertz", "hodgkin", "hopper",
		"hubble", "huygens", "hypatia", "johnson", "joule", "kepler", "knuth", "lamarr",
		"lamport", "laplace", "leavitt", "liskov", "lovelace", "maxwell", "meitner",
		"mendel", "mirzakhani", "morse", "newton", "noether", "ohm", "pascal", "pasteur",
		"planck", "poincare", "ramanujan", "ritchie", "sagan", "shannon", "somerville",
		"tesla", "thompson", "torvalds", "turing", "volta", "wiles", "wright", "wu", "yalow",
	}
)

// RandomName returns an adjective_surname name; from the second try (retry > 0) a digit is
// appended, which makes a collision on retry ten times less likely.
func RandomName(retry int) string {
	n := adjectives[rand.IntN(len(adjectives))] + "_" + surnames[rand.IntN(len(surnames))]
	if retry > 0 {
		n += strconv.Itoa(rand.IntN(10))
	}
	return n
}
