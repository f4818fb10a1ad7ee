// c2spverify checks a Workbench audit export with Go's reference C2SP code and nothing of Workbench's:
// golang.org/x/mod/sumdb/note opens every checkpoint (a C2SP signed note) against the log's public key,
// golang.org/x/mod/sumdb/tlog rebuilds the RFC 6962 tree from the exported leaf hashes, checks every
// checkpoint's root and every consistency proof, and checks an inclusion proof read from a C2SP
// tlog-proof@v1 file. Witness cosignatures (C2SP tlog-cosignature, type 0x04) in the notes are checked
// with crypto/ed25519 when the witness vkeys are given.
//
// Usage: c2spverify -export FILE [-proof FILE] [-witness VKEY]... [-require-cosigned]
// Prints one summary line and exits 0, or prints what failed on stderr and exits 1.
package main

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

type witnessFlags []string

func (w *witnessFlags) String() string     { return strings.Join(*w, ",") }
func (w *witnessFlags) Set(v string) error { *w = append(*w, v); return nil }

// cosigVerifier verifies timestamped Ed25519 cosignatures: the signature is an 8-byte big-endian
// timestamp and an Ed25519 signature over "cosignature/v1\ntime <t>\n" followed by the note text.
type cosigVerifier struct {
	name string
	hash uint32
	key  ed25519.PublicKey
}

func (v *cosigVerifier) Name() string    { return v.name }
func (v *cosigVerifier) KeyHash() uint32 { return v.hash }
func (v *cosigVerifier) Verify(msg, sig []byte) bool {
	if len(sig) != 8+ed25519.SignatureSize {
		return false
	}
	t := binary.BigEndian.Uint64(sig[:8])
	if t > 1<<63-1 {
		return false
	}
	signed := append([]byte(fmt.Sprintf("cosignature/v1\ntime %d\n", t)), msg...)
	return ed25519.Verify(v.key, signed, sig[8:])
}

func newCosigVerifier(vkey string) (*cosigVerifier, error) {
	parts := strings.SplitN(vkey, "+", 3)
	if len(parts) != 3 || len(parts[1]) != 8 {
		return nil, fmt.Errorf("malformed witness vkey %q", vkey)
	}
	hash, err := strconv.ParseUint(parts[1], 16, 32)
	if err != nil {
		return nil, fmt.Errorf("malformed witness key hash %q", parts[1])
	}
	raw, err := base64.StdEncoding.DecodeString(parts[2])
	if err != nil || len(raw) != 1+ed25519.PublicKeySize || raw[0] != 0x04 {
		return nil, fmt.Errorf("witness vkey %q is not a type 0x04 Ed25519 key", vkey)
	}
	sum := sha256.Sum256(append([]byte(parts[0]+"\n"), raw...))
	if binary.BigEndian.Uint32(sum[:4]) != uint32(hash) {
		return nil, fmt.Errorf("witness vkey %q: key hash does not match", vkey)
	}
	return &cosigVerifier{name: parts[0], hash: uint32(hash), key: ed25519.PublicKey(raw[1:])}, nil
}

type checkpoint struct {
	origin string
	size   int64
	root   tlog.Hash
	cosigs int
}

// open checks a signed note against the verifiers and parses its checkpoint body.
func open(text string, verifiers note.Verifiers, logHashes map[uint32]bool) (checkpoint, error) {
	n, err := note.Open([]byte(text), verifiers)
	if err != nil {
		return checkpoint{}, err
	}
	logSigned := false
	cosigs := 0
	for _, s := range n.Sigs {
		if logHashes[s.Hash] {
			logSigned = true
		} else {
			cosigs++
		}
	}
	if !logSigned {
		return checkpoint{}, errors.New("no signature by the log's key")
	}
	lines := strings.SplitN(n.Text, "\n", 4)
	if len(lines) < 4 {
		return checkpoint{}, errors.New("a checkpoint has origin, size and root lines")
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || size < 0 {
		return checkpoint{}, fmt.Errorf("bad size %q", lines[1])
	}
	root, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(root) != tlog.HashSize {
		return checkpoint{}, fmt.Errorf("bad root %q", lines[2])
	}
	var h tlog.Hash
	copy(h[:], root)
	return checkpoint{origin: lines[0], size: size, root: h, cosigs: cosigs}, nil
}

func hexHash(s string) (tlog.Hash, error) {
	var h tlog.Hash
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != tlog.HashSize {
		return h, fmt.Errorf("bad hash %q", s)
	}
	copy(h[:], b)
	return h, nil
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "c2spverify: "+format+"\n", args...)
	os.Exit(1)
}

func main() {
	exportPath := flag.String("export", "", "the JSONL export")
	proofPath := flag.String("proof", "", "a c2sp.org/tlog-proof@v1 file for one entry of the export")
	requireCosigned := flag.Bool("require-cosigned", false, "fail unless the newest checkpoint is cosigned")
	var witnesses witnessFlags
	flag.Var(&witnesses, "witness", "a witness vkey (type 0x04) whose cosignatures to check; repeatable")
	flag.Parse()
	if *exportPath == "" {
		fail("-export is required")
	}

	file, err := os.Open(*exportPath)
	if err != nil {
		fail("%v", err)
	}
	defer file.Close()
	scanner := bufio.NewScanner(file)
	scanner.Buffer(make([]byte, 1<<20), 64<<20)

	var header struct {
		Type     string `json:"type"`
		Origin   string `json:"origin"`
		TreeSize int64  `json:"tree_size"`
		Complete bool   `json:"complete"`
		Keys     []struct {
			PublicKey string `json:"public_key"`
		} `json:"keys"`
	}
	type cpRecord struct {
		Note        string   `json:"note"`
		Consistency []string `json:"consistency"`
	}
	var cps []cpRecord
	var leaves []tlog.Hash
	var prevs []string
	line := 0
	for scanner.Scan() {
		line++
		raw := scanner.Bytes()
		if len(bytes.TrimSpace(raw)) == 0 {
			continue
		}
		var kind struct {
			Type string `json:"type"`
		}
		if err := json.Unmarshal(raw, &kind); err != nil {
			fail("export line %d: %v", line, err)
		}
		switch kind.Type {
		case "header":
			if err := json.Unmarshal(raw, &header); err != nil {
				fail("export line %d: %v", line, err)
			}
		case "checkpoint":
			var c cpRecord
			if err := json.Unmarshal(raw, &c); err != nil {
				fail("export line %d: %v", line, err)
			}
			cps = append(cps, c)
		case "entry":
			var e struct {
				Seq  int64  `json:"seq"`
				Hash string `json:"hash"`
				Prev string `json:"prev"`
			}
			if err := json.Unmarshal(raw, &e); err != nil {
				fail("export line %d: %v", line, err)
			}
			if e.Seq != int64(len(leaves)) {
				fail("export line %d: entry %d out of order (expected %d)", line, e.Seq, len(leaves))
			}
			h, err := hexHash(e.Hash)
			if err != nil {
				fail("export line %d: %v", line, err)
			}
			leaves = append(leaves, h)
			prevs = append(prevs, e.Prev)
		}
	}
	if err := scanner.Err(); err != nil {
		fail("reading the export: %v", err)
	}
	if header.Origin == "" || len(header.Keys) == 0 || len(cps) == 0 {
		fail("the export has no header, key or checkpoint")
	}
	if !header.Complete {
		fail("a complete (unfiltered) export is needed to rebuild the tree")
	}

	// The log's keys as signed-note verifier keys named after the origin, plus the witnesses'.
	var list []note.Verifier
	logHashes := map[uint32]bool{}
	var vkeys []string
	for _, k := range header.Keys {
		pub, err := base64.StdEncoding.DecodeString(k.PublicKey)
		if err != nil {
			fail("a public key in the header is not base64")
		}
		vkey, err := note.NewEd25519VerifierKey(header.Origin, ed25519.PublicKey(pub))
		if err != nil {
			fail("%v", err)
		}
		v, err := note.NewVerifier(vkey)
		if err != nil {
			fail("%v", err)
		}
		list = append(list, v)
		logHashes[v.KeyHash()] = true
		vkeys = append(vkeys, vkey)
	}
	for _, w := range witnesses {
		v, err := newCosigVerifier(w)
		if err != nil {
			fail("%v", err)
		}
		list = append(list, v)
	}
	verifiers := note.VerifierList(list...)

	// The tree, rebuilt by tlog from the leaf hashes alone; the chain links between entries.
	var stored []tlog.Hash
	reader := tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(indexes))
		for i, x := range indexes {
			if x < 0 || x >= int64(len(stored)) {
				return nil, fmt.Errorf("no stored hash %d", x)
			}
			out[i] = stored[x]
		}
		return out, nil
	})
	for i, leaf := range leaves {
		hashes, err := tlog.StoredHashesForRecordHash(int64(i), leaf, reader)
		if err != nil {
			fail("building the tree at entry %d: %v", i, err)
		}
		stored = append(stored, hashes...)
		want := strings.Repeat("0", 64)
		if i > 0 {
			want = hex.EncodeToString(leaves[i-1][:])
		}
		if prevs[i] != want {
			fail("entry %d: its prev is not the hash of entry %d", i, i-1)
		}
	}

	var opened []checkpoint
	for i, c := range cps {
		cp, err := open(c.Note, verifiers, logHashes)
		if err != nil {
			fail("checkpoint %d: note.Open: %v", i+1, err)
		}
		if cp.origin != header.Origin {
			fail("checkpoint %d: origin %q, the export's is %q", i+1, cp.origin, header.Origin)
		}
		if cp.size > int64(len(leaves)) {
			fail("checkpoint %d: size %d, but the export has %d entries", i+1, cp.size, len(leaves))
		}
		if cp.size > 0 {
			root, err := tlog.TreeHash(cp.size, reader)
			if err != nil {
				fail("checkpoint %d: %v", i+1, err)
			}
			if root != cp.root {
				fail("checkpoint %d (size %d): tlog.TreeHash gives %s, the signed root is %s", i+1, cp.size, root, cp.root)
			}
		}
		opened = append(opened, cp)
	}
	head := opened[len(opened)-1]
	if head.size != header.TreeSize {
		fail("the last checkpoint has size %d, the header says %d", head.size, header.TreeSize)
	}
	for i, c := range cps {
		cp := opened[i]
		if cp.size == 0 {
			continue
		}
		var proof tlog.TreeProof
		for _, s := range c.Consistency {
			h, err := hexHash(s)
			if err != nil {
				fail("checkpoint %d: consistency proof: %v", i+1, err)
			}
			proof = append(proof, h)
		}
		if err := tlog.CheckTree(proof, head.size, head.root, cp.size, cp.root); err != nil {
			fail("checkpoint %d (size %d): tlog.CheckTree against the head (size %d): %v", i+1, cp.size, head.size, err)
		}
		ours, err := tlog.ProveTree(head.size, cp.size, reader)
		if err != nil || len(ours) != len(proof) {
			fail("checkpoint %d: tlog.ProveTree disagrees with the exported proof", i+1)
		}
		for j := range ours {
			if ours[j] != proof[j] {
				fail("checkpoint %d: tlog.ProveTree disagrees with the exported proof at hash %d", i+1, j)
			}
		}
	}
	if *requireCosigned && head.cosigs == 0 {
		fail("the newest checkpoint (size %d) has no cosignature from the given witnesses", head.size)
	}
	summary := fmt.Sprintf("go: %d checkpoints signed by %s, tree rebuilt from %d leaves, %d consistency proofs checked, newest cosigned by %d witness(es)",
		len(opened), strings.Join(vkeys, ","), len(leaves), len(cps), head.cosigs)

	if *proofPath != "" {
		data, err := os.ReadFile(*proofPath)
		if err != nil {
			fail("%v", err)
		}
		text := string(data)
		const magic = "c2sp.org/tlog-proof@v1\n"
		if !strings.HasPrefix(text, magic) {
			fail("the proof file does not start with %q", strings.TrimSpace(magic))
		}
		rest := text[len(magic):]
		lineOf := func() string {
			i := strings.IndexByte(rest, '\n')
			if i < 0 {
				fail("the proof file ends early")
			}
			l := rest[:i]
			rest = rest[i+1:]
			return l
		}
		l := lineOf()
		if strings.HasPrefix(l, "extra ") {
			l = lineOf()
		}
		if !strings.HasPrefix(l, "index ") {
			fail("the proof file has no index line")
		}
		index, err := strconv.ParseInt(l[len("index "):], 10, 64)
		if err != nil || index < 0 {
			fail("bad index line %q", l)
		}
		var path tlog.RecordProof
		for {
			l = lineOf()
			if l == "" {
				break
			}
			b, err := base64.StdEncoding.DecodeString(l)
			if err != nil || len(b) != tlog.HashSize {
				fail("bad inclusion proof line %q", l)
			}
			var h tlog.Hash
			copy(h[:], b)
			path = append(path, h)
		}
		cp, err := open(rest, verifiers, logHashes)
		if err != nil {
			fail("the proof's checkpoint: note.Open: %v", err)
		}
		if index >= int64(len(leaves)) {
			fail("the proof's index %d is not an exported entry", index)
		}
		if err := tlog.CheckRecord(path, cp.size, cp.root, index, leaves[index]); err != nil {
			fail("tlog.CheckRecord: entry %d in the tree of size %d: %v", index, cp.size, err)
		}
		summary += fmt.Sprintf("; entry %d included in size %d (checkpoint cosigned by %d)", index, cp.size, cp.cosigs)
	}
	fmt.Println(summary)
}
