"""The verbatim pathway (issue 25): digits of every script made ASCII, and the verbatim items of a
foreign text (URLs, e-mails, paths, placeables, Latin-script tokens, numbers), on hand-made texts."""

import pytest

from llink.hints import ascii_digits, english_hints, extract_hints

ZEROS = {"khmer": 0x17E0, "devanagari": 0x0966, "myanmar": 0x1040, "thai": 0x0E50, "lao": 0x0ED0, "arabic_indic": 0x0660}


@pytest.mark.parametrize("script", list(ZEROS))
def test_ascii_digits_every_script(script):
    digits = "".join(chr(ZEROS[script] + i) for i in range(10))
    assert ascii_digits(digits) == "0123456789"
    assert ascii_digits(f"ក {digits[3]}.{digits[5]} MW") == "ក 3.5 MW"
    assert extract_hints(f"ទំហំ {digits[3]}{digits[0]} MW") == ["30", "MW"]


def test_ascii_digits_leaves_everything_else():
    assert ascii_digits("ទំហំ ៣០ MW ²") == "ទំហំ 30 MW ²"  # a superscript two is no decimal digit
    assert ascii_digits("３ ༣ ۵") == "3 3 5"  # fullwidth, Tibetan, extended Arabic-Indic
    assert ascii_digits("abc 12") == "abc 12" and ascii_digits("") == ""


def test_urls_and_emails_and_a_number_inside_is_not_repeated():
    assert extract_hints("ចូល https://www.mozilla.org/en-US/firefox/ ឬ www.example.com។") == [
        "https://www.mozilla.org/en-US/firefox/", "www.example.com"]
    assert extract_hints("មើល http://x.org/page/42, ទំព័រ ៤២ និង 7") == ["http://x.org/page/42", "7"]
    assert extract_hints("ផ្ញើទៅ support@mozilla.org ។") == ["support@mozilla.org"]


def test_file_names_and_paths():
    assert extract_hints(r"រត់ soffice.exe ពី C:\Program\LibreOffice\ ឬ /usr/share/x.conf") == [
        "soffice.exe", "C:\\Program\\LibreOffice\\", "/usr/share/x.conf"]
    assert extract_hints("ថ្មី/លុប ៖ / ។") == []  # a slash between Khmer words is no path


def test_placeables():
    assert extract_hints("ចុច %s ឬ %1$s ឬ %d %S %@ %.2f") == ["%s", "%1$s", "%d", "%S", "%@", "%.2f"]
    assert extract_hints("ទាញយក { $count } ពី {0} {name} &brandShortName; $name$ #1") == [
        "{ $count }", "{0}", "{name}", "&brandShortName;", "$name$", "#1"]
    assert extract_hints("ជួរឈរ %COLUMNNUMBER និង %1") == ["%COLUMNNUMBER", "%1"]
    assert extract_hints("អត្រា 10% ហើយ 50% of") == ["10", "50", "of"]  # a percentage is no placeable


def test_tags_are_not_hints():
    assert extract_hints('<b>ដិត</b> <a data-l10n-name="x">តំណ</a>') == []
    assert extract_hints("<b>Firefox</b>") == ["Firefox"]


def test_latin_tokens_cells_and_numbers():
    assert extract_hints("ចុច Ctrl+C ក្នុង LibreOffice ជា UTF-8 ឬ PDF។") == ["Ctrl+C", "LibreOffice", "UTF-8", "PDF"]
    assert extract_hints("ប្រើFirefoxជានិច្ច") == ["Firefox"]  # no space around it in Khmer
    assert extract_hints("$A$1 A1:A3 BIN2DEC") == ["$A$1", "A1:A3", "BIN2DEC"]
    assert extract_hints("ទំហំ ១,០០០ និង 3.5 ម៉ោង ១០:៣០ ពី -2 ថ្ងៃ 2001-01-01។") == ["1,000", "3.5", "10:30", "-2", "2001-01-01"]
    assert extract_hints("ឯកសារ 3.5.") == ["3.5"]  # the full stop ends the number


def test_duplicates_and_items_inside_a_taken_item_are_skipped():
    assert extract_hints("LibreOffice និង Office និង LibreOffice 12 និង 2 និង 12 Calc") == ["LibreOffice", "12", "Calc"]


def test_caps_stop_and_never_cut_an_item():
    assert extract_hints("a b c d e f g h") == ["a", "b", "c", "d", "e", "f"]
    assert extract_hints("a b c d e f g h", max_hints=3) == ["a", "b", "c"]
    assert extract_hints("ABCD EFGH IJKL", max_chars=9) == ["ABCD", "EFGH"]  # 4 + 1 separator + 4
    assert extract_hints("ABCD EFGH IJKL", max_chars=8) == ["ABCD"]
    assert extract_hints("ABCDEFGHIJ xy", max_chars=5) == []  # too long: not cut, and taking stops
    assert extract_hints("http://example.org/" + "x" * 60) == []


def test_text_without_verbatim_items():
    assert extract_hints("") == []
    assert extract_hints("សួស្តី ពិភពលោក។") == []
    assert extract_hints("( ) - / ។ % & # $") == []


def test_english_hints_keep_what_a_translation_keeps_and_drop_plain_words():
    # The side by side of extract_hints on a Khmer text and english_hints on its English.
    km = "ចុច Ctrl+C ដើម្បីចម្លង ៣ ជួរ ក្នុង LibreOffice ទៅ report.pdf"
    en = "Press Ctrl+C to copy 3 rows in LibreOffice to report.pdf"
    assert extract_hints(km) == english_hints(en) == ["Ctrl+C", "3", "LibreOffice", "report.pdf"]
    assert extract_hints(en)[:2] == ["Press", "Ctrl+C"]  # the foreign rule would hand over the words


def test_english_hints_word_rule():
    # digits, + or _, a file extension, a capital after the first letter: kept as they are
    assert english_hints("use 3D and BIN2DEC with my_var on PDF or AutoText") == ["3D", "BIN2DEC", "my_var", "PDF", "AutoText"]
    # one capital letter is a name (column A) unless it starts a sentence (the article A)
    assert english_hints("A value in column A. A cell") == ["A"]
    assert english_hints("Sort by column B: B is first") == ["B"]
    # capitalised and lowercase words are left to the slots: no rule tells Calc from Assign
    assert english_hints("Click Assign to open Calc") == []
    # what is not a word is taken as extract_hints takes it, digits of any script included
    assert english_hints("See https://example.org for %s of { $count } ៤២ files") == ["https://example.org", "%s", "{ $count }", "42"]
    assert english_hints("") == []


def test_english_hints_share_the_limits():
    assert english_hints("1 2 3 4 5 6 7 8") == ["1", "2", "3", "4", "5", "6"]
    assert english_hints("words ABCD EFGH IJKL more", max_chars=9) == ["ABCD", "EFGH"]
