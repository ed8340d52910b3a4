#include "common/csv_writer.hpp"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <locale>
#include <sstream>
#include <stdexcept>

namespace torchloss::examples {
namespace {

/// Quotes `field` when it holds a separator, quote or line break, doubling inner quotes.
std::string quote_if_needed(const std::string& field) {
  if (field.find_first_of(",\"\r\n") == std::string::npos) return field;
  std::string quoted = "\"";
  for (const char c : field) {
    quoted += c;
    if (c == '"') quoted += '"';
  }
  return quoted + '"';
}

}  // namespace

CsvWriter::Cell::Cell(double value) {
  std::ostringstream text;
  text.imbue(std::locale::classic());  // a '.' decimal point whatever the user's locale
  text.precision(6);
  text << value;
  text_ = text.str();
}

CsvWriter::CsvWriter(const std::string& path, std::vector<std::string> columns)
    : path_(path), num_columns_(columns.size()) {
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) {
    std::error_code error;
    std::filesystem::create_directories(parent, error);
    if (error) {
      throw std::runtime_error("cannot create directory '" + parent.string() + "': " + error.message());
    }
  }
  out_.open(path, std::ios::out | std::ios::trunc);
  if (!out_) {
    throw std::runtime_error("cannot open CSV file '" + path + "' for writing: " + std::strerror(errno));
  }
  write_fields(columns);
}

void CsvWriter::write_row(const std::vector<Cell>& cells) {
  if (cells.size() != num_columns_) {
    throw std::invalid_argument("CSV row has " + std::to_string(cells.size()) + " fields but '" + path_ +
                                "' has " + std::to_string(num_columns_) + " columns");
  }
  std::vector<std::string> fields;
  fields.reserve(cells.size());
  for (const Cell& cell : cells) fields.push_back(cell.text());
  write_fields(fields);
}

void CsvWriter::write_fields(const std::vector<std::string>& fields) {
  for (std::size_t i = 0; i < fields.size(); ++i) {
    if (i > 0) out_ << ',';
    out_ << quote_if_needed(fields[i]);
  }
  out_ << '\n' << std::flush;
  if (!out_) throw std::runtime_error("cannot write to CSV file '" + path_ + "'");
}

std::vector<std::vector<std::string>> read_csv(const std::string& path) {
  std::ifstream in(path, std::ios::in | std::ios::binary);
  if (!in) throw std::runtime_error("cannot open CSV file '" + path + "' for reading: " + std::strerror(errno));
  std::ostringstream buffer;
  buffer << in.rdbuf();
  const std::string text = buffer.str();

  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> row;
  std::string field;
  bool quoted = false;
  bool row_started = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quoted) {
      if (c != '"') {
        field += c;
      } else if (i + 1 < text.size() && text[i + 1] == '"') {
        field += '"';
        ++i;
      } else {
        quoted = false;
      }
      continue;
    }
    if (c == '"') {
      quoted = true;
      row_started = true;
    } else if (c == ',') {
      row.push_back(std::move(field));
      field.clear();
      row_started = true;
    } else if (c == '\n' || c == '\r') {
      if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
      if (row_started || !field.empty()) {
        row.push_back(std::move(field));
        rows.push_back(std::move(row));
      }
      field.clear();
      row.clear();
      row_started = false;
    } else {
      field += c;
      row_started = true;
    }
  }
  if (quoted) throw std::runtime_error("CSV file '" + path + "' ends inside a quoted field");
  if (row_started || !field.empty()) {
    row.push_back(std::move(field));
    rows.push_back(std::move(row));
  }
  return rows;
}

}  // namespace torchloss::examples
