"""Markdown tables for reports and benchmarks."""


def markdown_table(rows, columns):
    """A Markdown table of dict `rows`; `columns` is a list of (key, header, format or None); None prints "-"."""
    lines = ["| " + " | ".join(header for _, header, _ in columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = [
            "-" if row.get(key) is None else (fmt.format(row[key]) if fmt else str(row[key])) for key, _, fmt in columns
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
