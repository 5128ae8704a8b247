package graph

// prescan walks the raw YAML text once, without allocating per value, and
// refuses nesting, value counts and scalars past the limits before the YAML
// library sees the file: the library's parser recurses once per nesting
// level and keeps a token (~600 bytes with its AST node) per value and ~50
// bytes per scalar byte, so a 200 KB "[[[[..." or a 2 MB scalar would cost
// hundreds of MiB before any check on its result could run.
//
// It is a YAML-shaped lexer, not a parser: it recognises quotes, comments,
// block scalars (| and >), multi-line plain scalars, flow collections and
// block collections by their indentation. Its counts are meant never to
// exceed the real ones (aliases count as one value here; their expansion
// is measured on the parsed tree, see expand.go), so a file it refuses is
// over the limit; a file it lets through is measured exactly afterwards.
// Scalars are measured as written (escapes and folded line breaks
// included), an upper bound of their value's length.
func prescan(data []byte, lim Limits) *limitError {
	s := &scanner{lim: lim, bsIndent: -1}
	line := 0
	for start := 0; start < len(data); {
		end := start
		for end < len(data) && data[end] != '\n' && data[end] != '\r' {
			end++
		}
		line++
		if err := s.line(data[start:end], line); err != nil {
			return err
		}
		start = end + 1 // YAML breaks lines at LF, CRLF and a lone CR
		if end+1 < len(data) && data[end] == '\r' && data[end+1] == '\n' {
			start++
		}
	}
	return nil
}

type scanner struct {
	lim Limits

	nodes int
	flow  int   // open [ and {
	stack []int // columns of the open block collections
	// rooted: the document's root block collection is counted; a root
	// key less indented than the first one is the same mapping.
	rooted bool

	// An open block scalar: content lines are those indented more than
	// bsIndent (the column of the collection that holds it).
	inBlock     bool
	bsIndent    int
	bsContent   int // indentation of its first content line, -1 before
	bsSize      int
	bsLine      int
	quote       byte // an open quoted scalar continues on the next line
	qSize       int
	qLine       int
	plainOpen   bool // a block plain scalar may continue on the next line
	flowCont    bool // a flow plain scalar ended the line: it may go on
	plainIndent int
	plainSize   int
	plainLine   int
}

func (s *scanner) top() int {
	if len(s.stack) == 0 {
		return -1
	}
	return s.stack[len(s.stack)-1]
}

func (s *scanner) depthErr(line, col int) *limitError {
	return &limitError{Pos{line, col}, tooDeep(s.lim.MaxDepth)}
}

func (s *scanner) addNode(line, col int) *limitError {
	s.nodes++
	if s.nodes > s.lim.MaxNodes {
		return &limitError{Pos{line, col}, tooManyNodes("the document holds", s.lim.MaxNodes)}
	}
	return nil
}

func (s *scanner) scalarErr(line int) *limitError {
	return &limitError{Pos{line, 1}, scalarTooBig("a scalar is", s.lim.MaxScalarBytes)}
}

func indentOf(text []byte) int {
	i := 0
	for i < len(text) && text[i] == ' ' {
		i++
	}
	return i
}

func blank(text []byte) bool {
	for _, c := range text {
		if c != ' ' && c != '\t' {
			return false
		}
	}
	return true
}

func (s *scanner) line(text []byte, line int) *limitError {
	ind := indentOf(text)
	if s.inBlock {
		// Content is indented more than the collection that holds the
		// scalar, and as much as its first line (YAML's auto-detected
		// indentation): a line less indented ends it.
		if blank(text) || ind > s.bsIndent && (s.bsContent < 0 || ind >= s.bsContent) {
			if !blank(text) && s.bsContent < 0 {
				s.bsContent = ind
			}
			n := len(text) + 1
			if s.bsContent >= 0 && ind >= s.bsContent {
				n -= s.bsContent
			}
			s.bsSize += n
			if s.bsSize > s.lim.MaxScalarBytes {
				return s.scalarErr(s.bsLine)
			}
			return nil
		}
		s.inBlock = false
	}
	i := 0
	if s.quote != 0 {
		j, closed := s.scanQuoted(text, 0)
		s.qSize += j + 1
		if s.qSize > s.lim.MaxScalarBytes {
			return s.scalarErr(s.qLine)
		}
		if !closed {
			return nil
		}
		s.quote = 0
		i = j + 1
	} else if s.plainOpen {
		if blank(text) {
			return nil // a folded line break inside the scalar
		}
		if s.flow == 0 && ind > s.plainIndent && !comment(text, ind) {
			s.plainSize += len(text) - ind + 1
			if s.plainSize > s.lim.MaxScalarBytes {
				return s.scalarErr(s.plainLine)
			}
			return nil
		}
		s.plainOpen = false
	}
	cont := s.flowCont
	if i == 0 {
		if ind == len(text) {
			return nil // a blank line; a flow scalar may go on after it
		}
		s.flowCont = false
		if text[ind] == '#' {
			return nil
		}
		if ind == 0 && (hasPrefixAt(text, 0, "---") || hasPrefixAt(text, 0, "...")) && (len(text) == 3 || text[3] == ' ' || text[3] == '\t') {
			s.stack, s.rooted = s.stack[:0], false
			i = 3
		} else if ind == 0 && text[0] == '%' {
			return nil // a directive
		}
		if s.flow == 0 {
			for len(s.stack) > 0 && s.top() > ind {
				s.stack = s.stack[:len(s.stack)-1]
			}
		}
		if i == 0 {
			i = ind
		}
	}
	s.flowCont = false
	return s.tokens(text, i, line, cont && s.quote == 0)
}

func comment(text []byte, i int) bool { return i < len(text) && text[i] == '#' }

func hasPrefixAt(text []byte, i int, p string) bool {
	return len(text)-i >= len(p) && string(text[i:i+len(p)]) == p
}

func space(text []byte, i int) bool {
	return i >= len(text) || text[i] == ' ' || text[i] == '\t'
}

func flowIndicator(c byte) bool {
	return c == ',' || c == '[' || c == ']' || c == '{' || c == '}'
}

// push opens a block collection at col unless one is open there.
func (s *scanner) push(col, line int) *limitError {
	if s.flow > 0 || s.top() >= col {
		return nil
	}
	s.stack = append(s.stack, col)
	if len(s.stack)+s.flow > s.lim.MaxDepth {
		return s.depthErr(line, col+1)
	}
	if len(s.stack) == 1 {
		if s.rooted {
			return nil
		}
		s.rooted = true
	}
	return s.addNode(line, col+1)
}

// tokens scans the rest of a line from i, at a place where a value may
// start.
//
// cont: the line may continue a flow plain scalar from the line before
// ("[a\n b]" holds one value, "a b").
func (s *scanner) tokens(text []byte, i, line int, cont bool) *limitError {
	for first := true; i < len(text); first = false {
		c := text[i]
		if !first {
			cont = false
		}
		switch {
		case c == ' ' || c == '\t':
			i++
			first = true
			continue
		case c == '#':
			return nil
		case c == '-' && s.flow == 0 && space(text, i+1):
			if err := s.push(i, line); err != nil {
				return err
			}
			i++
			continue
		case c == '?' && space(text, i+1):
			i++
			continue
		case c == '[' || c == '{':
			s.flow++
			if len(s.stack)+s.flow > s.lim.MaxDepth {
				return s.depthErr(line, i+1)
			}
			if err := s.addNode(line, i+1); err != nil {
				return err
			}
			i++
			continue
		case (c == ']' || c == '}') && s.flow > 0:
			s.flow--
			i++
			continue
		case c == ',' && s.flow > 0:
			i++
			continue
		case c == ':' && (space(text, i+1) || s.flow > 0):
			i++ // a value after an empty or a complex key
			continue
		case c == '&' || c == '!':
			for i < len(text) && !space(text, i) && !(s.flow > 0 && flowIndicator(text[i])) {
				i++
			}
			continue
		case c == '*':
			if err := s.addNode(line, i+1); err != nil {
				return err
			}
			for i < len(text) && !space(text, i) && !(s.flow > 0 && flowIndicator(text[i])) {
				i++
			}
			continue
		case (c == '|' || c == '>') && s.flow == 0:
			if err := s.addNode(line, i+1); err != nil {
				return err
			}
			s.inBlock, s.bsIndent, s.bsContent, s.bsSize, s.bsLine = true, s.top(), -1, 0, line
			return nil // the header's rest is indicators and a comment
		}
		start := i
		quoted := c == '\'' || c == '"'
		if quoted {
			s.quote, s.qLine = c, line
			j, closed := s.scanQuoted(text, i+1)
			s.qSize = j - i - 1 // the text between the quotes
			if s.qSize > s.lim.MaxScalarBytes {
				return s.scalarErr(line)
			}
			if err := s.addNode(line, i+1); err != nil {
				return err
			}
			if !closed {
				return nil
			}
			s.quote = 0
			i = j + 1
		} else {
			i = s.scanPlain(text, i)
			if i-start > s.lim.MaxScalarBytes {
				return s.scalarErr(line)
			}
			if !cont {
				if err := s.addNode(line, start+1); err != nil {
					return err
				}
			}
		}
		end := i
		for i < len(text) && (text[i] == ' ' || text[i] == '\t') {
			i++
		}
		if i < len(text) && text[i] == ':' && (space(text, i+1) || s.flow > 0) {
			// It was a key.
			if err := s.push(start, line); err != nil {
				return err
			}
			i++
			continue
		}
		if !quoted && i >= len(text) {
			if s.flow == 0 {
				s.plainOpen, s.plainIndent, s.plainSize, s.plainLine = true, s.top(), end-start, line
			} else {
				s.flowCont = true
			}
		}
	}
	return nil
}

// scanPlain returns the end of the plain scalar starting at i.
func (s *scanner) scanPlain(text []byte, i int) int {
	for j := i; j < len(text); j++ {
		c := text[j]
		switch {
		case c == ':' && (space(text, j+1) || s.flow > 0 && j+1 < len(text) && flowIndicator(text[j+1])):
			return trimRight(text, i, j)
		case c == '#' && j > i && (text[j-1] == ' ' || text[j-1] == '\t'):
			return trimRight(text, i, j)
		case s.flow > 0 && flowIndicator(c):
			return trimRight(text, i, j)
		}
	}
	return trimRight(text, i, len(text))
}

func trimRight(text []byte, i, j int) int {
	for j > i && (text[j-1] == ' ' || text[j-1] == '\t') {
		j--
	}
	return j
}

// scanQuoted returns the index of the closing quote of s.quote from i, or
// len(text) and false when the scalar goes on to the next line.
func (s *scanner) scanQuoted(text []byte, i int) (int, bool) {
	for j := i; j < len(text); j++ {
		switch text[j] {
		case '\\':
			if s.quote == '"' {
				j++
			}
		case '\'':
			if s.quote == '\'' {
				if j+1 < len(text) && text[j+1] == '\'' {
					j++
					continue
				}
				return j, true
			}
		case '"':
			if s.quote == '"' {
				return j, true
			}
		}
	}
	return len(text), false
}
