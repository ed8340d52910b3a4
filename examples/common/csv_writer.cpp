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

}  // namespace torchloss::examples
