//! A bitmap drawing backend whose text is rasterised here, from the embedded
//! DejaVu Sans faces, instead of by plotters' ab_glyph font code.
//!
//! plotters 0.3.7's ab_glyph renderer drops each glyph's left side bearing
//! and snaps glyph origins to whole pixels, which makes labels look
//! unevenly spaced ("TTF T"). Everything except text is delegated to
//! `BitMapBackend` unchanged.

use std::sync::OnceLock;

use ab_glyph::{point, Font, FontRef, Glyph, PxScale, ScaleFont};
use plotters::backend::BitMapBackend;
use plotters::style::FontStyle;
use plotters_backend::text_anchor::{HPos, VPos};
use plotters_backend::{
    BackendColor, BackendCoord, BackendStyle, BackendTextStyle, DrawingBackend, DrawingErrorKind,
};

pub(crate) struct Fonts {
    regular: FontRef<'static>,
    bold: FontRef<'static>,
}

/// Loads the embedded faces once per process. Also registers them with
/// plotters, so any text plotters measures on its own (it does for
/// multi-line text) uses the same metrics instead of failing.
pub(crate) fn fonts() -> Result<&'static Fonts, String> {
    static FONTS: OnceLock<Result<Fonts, String>> = OnceLock::new();
    FONTS
        .get_or_init(|| {
            let (regular, bold) = (dejavu::sans::regular(), dejavu::sans::bold());
            let family = plotters::style::FontFamily::SansSerif.as_str();
            let invalid = |face: &str| format!("embedded DejaVu Sans {face} is not a valid font");
            plotters::style::register_font(family, FontStyle::Normal, regular)
                .map_err(|_| invalid("regular"))?;
            plotters::style::register_font(family, FontStyle::Bold, bold)
                .map_err(|_| invalid("bold"))?;
            Ok(Fonts {
                regular: FontRef::try_from_slice(regular).map_err(|_| invalid("regular"))?,
                bold: FontRef::try_from_slice(bold).map_err(|_| invalid("bold"))?,
            })
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// Horizontal text laid out at pixel size `size` (ascent-to-descent height),
/// with glyphs positioned at fractional x so spacing follows the font's
/// advances and kerning exactly.
pub(crate) struct Line {
    pub glyphs: Vec<Glyph>,
    pub width: f32,
    pub height: f32,
}

impl Fonts {
    fn face(&self, style: FontStyle) -> &FontRef<'static> {
        match style {
            FontStyle::Bold => &self.bold,
            _ => &self.regular,
        }
    }

    pub fn layout(&self, text: &str, size: f64, style: FontStyle) -> Line {
        let scale = PxScale::from(size.max(1.0) as f32);
        let font = self.face(style).as_scaled(scale);
        let ascent = font.ascent();
        let mut caret = 0.0f32;
        let mut prev = None;
        let mut glyphs = Vec::with_capacity(text.len());
        for c in text.chars().filter(|c| !c.is_control()) {
            let id = font.glyph_id(c);
            if let Some(p) = prev {
                caret += font.kern(p, id);
            }
            glyphs.push(id.with_scale_and_position(scale, point(caret, ascent)));
            caret += font.h_advance(id);
            prev = Some(id);
        }
        Line {
            glyphs,
            width: caret,
            height: ascent - font.descent(),
        }
    }

    pub fn measure(&self, text: &str, size: f64, style: FontStyle) -> (u32, u32) {
        let line = self.layout(text, size, style);
        (line.width.ceil() as u32, line.height.ceil() as u32)
    }
}

pub(crate) struct Canvas<'a> {
    inner: BitMapBackend<'a>,
    fonts: &'static Fonts,
}

impl<'a> Canvas<'a> {
    pub fn new(buf: &'a mut [u8], size: (u32, u32), fonts: &'static Fonts) -> Self {
        Self {
            inner: BitMapBackend::with_buffer(buf, size),
            fonts,
        }
    }
}

type BackendError<'a> = <BitMapBackend<'a> as DrawingBackend>::ErrorType;
type Res<'a> = Result<(), DrawingErrorKind<BackendError<'a>>>;

impl<'a> DrawingBackend for Canvas<'a> {
    type ErrorType = BackendError<'a>;

    fn get_size(&self) -> (u32, u32) {
        self.inner.get_size()
    }

    fn ensure_prepared(&mut self) -> Res<'a> {
        self.inner.ensure_prepared()
    }

    fn present(&mut self) -> Res<'a> {
        self.inner.present()
    }

    fn draw_pixel(&mut self, point: BackendCoord, color: BackendColor) -> Res<'a> {
        self.inner.draw_pixel(point, color)
    }

    fn draw_line<S: BackendStyle>(
        &mut self,
        from: BackendCoord,
        to: BackendCoord,
        style: &S,
    ) -> Res<'a> {
        self.inner.draw_line(from, to, style)
    }

    fn draw_rect<S: BackendStyle>(
        &mut self,
        upper_left: BackendCoord,
        bottom_right: BackendCoord,
        style: &S,
        fill: bool,
    ) -> Res<'a> {
        self.inner.draw_rect(upper_left, bottom_right, style, fill)
    }

    fn draw_path<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        path: I,
        style: &S,
    ) -> Res<'a> {
        self.inner.draw_path(path, style)
    }

    fn draw_circle<S: BackendStyle>(
        &mut self,
        center: BackendCoord,
        radius: u32,
        style: &S,
        fill: bool,
    ) -> Res<'a> {
        self.inner.draw_circle(center, radius, style, fill)
    }

    fn fill_polygon<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        vert: I,
        style: &S,
    ) -> Res<'a> {
        self.inner.fill_polygon(vert, style)
    }

    fn blit_bitmap(&mut self, pos: BackendCoord, size: (u32, u32), src: &[u8]) -> Res<'a> {
        self.inner.blit_bitmap(pos, size, src)
    }

    fn estimate_text_size<TStyle: BackendTextStyle>(
        &self,
        text: &str,
        style: &TStyle,
    ) -> Result<(u32, u32), DrawingErrorKind<Self::ErrorType>> {
        Ok(self.fonts.measure(text, style.size(), style.style()))
    }

    fn draw_text<TStyle: BackendTextStyle>(
        &mut self,
        text: &str,
        style: &TStyle,
        pos: BackendCoord,
    ) -> Res<'a> {
        let color = style.color();
        if color.alpha <= 0.0 || text.is_empty() {
            return Ok(());
        }
        let font = self.fonts.face(style.style());
        let line = self.fonts.layout(text, style.size(), style.style());
        let (w, h) = (line.width.round() as i32, line.height.round() as i32);
        // Anchor offsets apply before rotation, as in plotters' default, so
        // rotated axis titles stay centred on their axis.
        let dx = match style.anchor().h_pos {
            HPos::Left => 0,
            HPos::Center => -w / 2,
            HPos::Right => -w,
        };
        let dy = match style.anchor().v_pos {
            VPos::Top => 0,
            VPos::Center => -h / 2,
            VPos::Bottom => -h,
        };
        let trans = style.transform();
        let mut result = Ok(());
        for glyph in line.glyphs {
            let Some(outline) = font.outline_glyph(glyph) else {
                continue;
            };
            let bounds = outline.px_bounds();
            let (ox, oy) = (bounds.min.x as i32 + dx, bounds.min.y as i32 + dy);
            outline.draw(|gx, gy, coverage| {
                if coverage <= 1.0 / 255.0 || result.is_err() {
                    return;
                }
                let (x, y) = trans.transform(ox + gx as i32, oy + gy as i32);
                let pixel = BackendColor {
                    alpha: color.alpha * f64::from(coverage.min(1.0)),
                    rgb: color.rgb,
                };
                result = self.inner.draw_pixel((pos.0 + x, pos.1 + y), pixel);
            });
        }
        result
    }
}
