package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"
)

// errTokenFile marks a token file that is missing or empty: Vault Agent has not rendered it yet.
// The service answers 503 for it (a temporary state), not 502 (Lark refused).
var errTokenFile = errors.New("token file not ready")

// maxTokenFile bounds what is read from a token file; a Lark token is a few hundred bytes.
const maxTokenFile = 64 << 10

// tokenFile hands out the token in a file that Vault Agent keeps fresh. Agent writes a new file
// and renames it over the old one well before the token in it expires, so the file is read again
// whenever it is a different file or was modified: one stat per call, and no file watcher that
// could lose track of a file renamed away under it.
type tokenFile struct {
	path string

	mu    sync.Mutex
	stamp fileStamp
	token string
}

// fileStamp tells one version of a file from another: a rename puts a different inode in place,
// and an edit in place changes the size or the modification time.
type fileStamp struct {
	dev, ino uint64
	size     int64
	mtime    time.Time
}

func stampOf(fi fs.FileInfo) fileStamp {
	s := fileStamp{size: fi.Size(), mtime: fi.ModTime()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		s.dev, s.ino = uint64(st.Dev), st.Ino
	}
	return s
}

func newTokenFile(path string) *tokenFile { return &tokenFile{path: path} }

// current returns the token in the file now. It fails with errTokenFile while the file is missing
// or empty, which is the case until Agent has rendered it the first time.
func (f *tokenFile) current() (string, error) {
	fi, err := os.Stat(f.path)
	if err != nil {
		return "", fmt.Errorf("%w: %s: %v; has Vault Agent rendered it yet?", errTokenFile, f.path, pathErr(err))
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.token != "" && stampOf(fi) == f.stamp {
		return f.token, nil
	}
	// Read and stat through one open file, so the stamp kept is that of the content read even if
	// Agent renames a newer file into place meanwhile (the next call then sees the change).
	file, err := os.Open(f.path)
	if err != nil {
		return "", fmt.Errorf("%w: %s: %v", errTokenFile, f.path, pathErr(err))
	}
	defer file.Close()
	opened, err := file.Stat()
	if err != nil {
		return "", fmt.Errorf("%w: %s: %v", errTokenFile, f.path, pathErr(err))
	}
	data, err := io.ReadAll(io.LimitReader(file, maxTokenFile+1))
	if err != nil {
		return "", fmt.Errorf("%w: %s: %v", errTokenFile, f.path, pathErr(err))
	}
	if len(data) > maxTokenFile {
		return "", fmt.Errorf("%w: %s is larger than %d bytes: not a token", errTokenFile, f.path, maxTokenFile)
	}
	token := strings.TrimSpace(string(data))
	if token == "" {
		return "", fmt.Errorf("%w: %s is empty", errTokenFile, f.path)
	}
	f.token, f.stamp = token, stampOf(opened)
	return token, nil
}

// pathErr drops the path from an *fs.PathError: the message names the path once, itself.
func pathErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
