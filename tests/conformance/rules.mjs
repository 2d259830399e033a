// Reads {"classes": {name: [rules]}, "texts": [text]} on stdin and prints,
// as JSON, the classes the JavaScript SDK's PhraseSet finds in each text:
// the JavaScript side of the text-rule conformance check.
import { readFileSync } from 'node:fs';
import { PhraseSet } from '../../sdk/js/src/index.js';

const request = JSON.parse(readFileSync(0, 'utf8'));
const phrases = new PhraseSet(request.classes);
process.stdout.write(JSON.stringify(request.texts.map((text) => phrases.matchingClasses(text))));
