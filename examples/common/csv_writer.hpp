#pragma once
/// @file csv_writer.hpp
/// A CSV file of metrics: a header, then one flushed row per call; and reading one back.

#include <fstream>
#include <string>
#include <type_traits>
#include <vector>

namespace torchloss::examples {

/// Writes RFC 4180 CSV: fields holding a comma, quote or line break are quoted.
class CsvWriter {
 public:
  /// One field of a row: an integer, a floating-point number (6 significant digits) or text.
  class Cell {
   public:
    template <typename Integer, std::enable_if_t<std::is_integral_v<Integer>, int> = 0>
    Cell(Integer value) : text_(std::to_string(value)) {}  // NOLINT(google-explicit-constructor)
    Cell(double value);                                      // NOLINT(google-explicit-constructor)
    Cell(std::string text) : text_(std::move(text)) {}      // NOLINT(google-explicit-constructor)
    Cell(const char* text) : text_(text) {}                 // NOLINT(google-explicit-constructor)

    /// Returns the field as written, before quoting.
    const std::string& text() const { return text_; }

   private:
    std::string text_;
  };

  /// Creates (truncates) `path`, creating its parent directories, and writes the header.
  /// Throws `std::runtime_error` when the file cannot be written.
  CsvWriter(const std::string& path, std::vector<std::string> columns);

  /// Appends one row and flushes it, so the file is complete after each epoch.
  /// Throws `std::invalid_argument` when the row's length differs from the header's.
  void write_row(const std::vector<Cell>& cells);

  /// Returns the file's path.
  const std::string& path() const { return path_; }

 private:
  void write_fields(const std::vector<std::string>& fields);

  std::string path_;
  std::size_t num_columns_;
  std::ofstream out_;
};

/// The rows of a CSV file (the header first), each a list of fields with RFC 4180 quoting
/// undone. Throws `std::runtime_error` naming the file when it cannot be read or holds an
/// unterminated quoted field.
std::vector<std::vector<std::string>> read_csv(const std::string& path);

}  // namespace torchloss::examples
